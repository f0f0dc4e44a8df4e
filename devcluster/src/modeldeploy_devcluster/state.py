"""The on-disk layout of one cluster and its ``state.json``.

``up`` (a detached supervisor) writes the state; ``down``, ``status``, the
pytest plugin and ``logs`` read it. Keeping every path in one place means a
state directory is self-describing: a kubeconfig next to a state.json is a
cluster another process can reuse.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_NODE = "devcluster-node"


def default_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / "modeldeploy-devcluster"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def prometheus_data(self) -> Path:
        return self.root / "prometheus"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (system:masters)."""
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def images(self) -> Path:
        """Image map the node re-reads before starting each container."""
        return self.root / "images.yaml"

    @property
    def pods(self) -> Path:
        return self.root / "pods"

    @property
    def control(self) -> Path:
        """Requests to stop/start a component (Cluster.stop_component), one file each."""
        return self.root / "control"

    def component_kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.kubeconfig"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


@dataclass
class State:
    phase: str = "starting"  # starting | ready | failed | stopping
    supervisor_pid: int = 0
    server: str = ""
    prometheus_url: str = ""
    kubeconfig: str = ""
    node: str = DEFAULT_NODE
    error: str = ""
    components: dict[str, int] = field(default_factory=dict)  # name -> pid (== pgid)
    timings: dict[str, float] = field(default_factory=dict)  # seconds to ready, per step
    # Fault injection (Cluster.stop_component / start_component): components
    # stopped on request, starts after the first per component, and the last
    # request served ({"id": ..., "error": ...}, error empty on success).
    held: list[str] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    control: dict[str, str] = field(default_factory=dict)

    def save(self, layout: Layout) -> None:
        tmp = layout.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, layout.state_file)

    @classmethod
    def load(cls, layout: Layout) -> State | None:
        try:
            data = json.loads(layout.state_file.read_text())
        except (OSError, ValueError):
            return None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
