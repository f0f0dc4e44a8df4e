"""A handle on a running cluster: what tests and tools need from it.

Built from a state directory (``from_dir``) or from a kubeconfig that sits
in one (``from_kubeconfig``: the fast dev loop reuses a cluster started by
``modeldeploy-devcluster up``). A kubeconfig of any other cluster (kind, a
user's) gives a handle whose logs come from the API and whose forwards go
through kube-proxy (a NodePort twin of the Service, reached on the node's address).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kubernetes

from modeldeploy_devcluster import forward as forwarding
from modeldeploy_devcluster.node import images
from modeldeploy_devcluster.state import Layout, State


class NoSuchPod(LookupError):
    pass


class ControlError(RuntimeError):
    """The supervisor could not stop or start a component as asked."""


@dataclass
class Cluster:
    root: Path
    kubeconfig: Path
    server: str
    prometheus_url: str
    # False for a cluster that is not a local devcluster (no node directories).
    local: bool = True

    @classmethod
    def from_dir(cls, root: Path) -> Cluster:
        layout = Layout(root)
        state = State.load(layout)
        if state is None:
            raise FileNotFoundError(f"no cluster state in {root} (run `modeldeploy-devcluster up`)")
        return cls(root, layout.kubeconfig, state.server, state.prometheus_url)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, prometheus_url: str | None = None) -> Cluster:
        root = kubeconfig.parent
        state = State.load(Layout(root))
        api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        server = api.configuration.host
        url = prometheus_url or (state.prometheus_url if state else "")
        return cls(root, kubeconfig, server, url, local=state is not None)

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))

    def pod_dir(self, pod: str, namespace: str = "default") -> Path:
        """The node's directory for the newest pod of that name (logs, kubeconfig, pgids)."""
        dirs = sorted(
            self.layout.pods.glob(f"{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime
        )
        if not dirs:
            raise NoSuchPod(f"no pod {namespace}/{pod} ever ran on the devcluster node")
        return dirs[-1]

    def logs(self, pod: str, namespace: str = "default", container: str | None = None) -> str:
        if not self.local:
            return forwarding.api_logs(self.api_client(), pod, namespace, container)
        directory = self.pod_dir(pod, namespace)
        files = sorted(directory.glob("*.log"))
        if container is not None:
            files = [f for f in files if f.stem == container]
            if not files:
                raise NoSuchPod(f"pod {namespace}/{pod} has no container {container!r}")
        if len(files) == 1:
            return files[0].read_text(errors="replace")
        return "".join(f"==> {f.stem} <==\n{f.read_text(errors='replace')}" for f in files)

    @contextlib.contextmanager
    def forward(self, service: str, namespace: str, port: int) -> Iterator[str]:
        """A local listener that proxies to a ready endpoint of the Service; yields its URL."""
        if not self.local:
            with forwarding.node_port(self.api_client(), service, namespace, port) as url:
                yield url
            return
        with forwarding.forward(self.api_client(), service, namespace, port) as url:
            yield url

    def register_images(self, mapping: dict) -> None:
        """Add image -> command entries; the node reads them before starting each container."""
        path = self.layout.images
        current = images.read_file(path)
        current.update(images.parse(mapping, "register_images"))
        images.write_file(path, current)

    # -- fault injection (served by the supervisor, see supervisor.RESTARTABLE) --

    def stop_component(
        self, name: str, *, signal: str = "SIGKILL", wipe_data: bool = False, timeout: float = 30
    ) -> None:
        """Stop one control-plane component (etcd, kube-apiserver, kube-controller-manager,
        kube-scheduler, prometheus) until `start_component`. SIGKILL by default: its
        clients see connections refused, as after a crash. `wipe_data` (Prometheus
        only) deletes its TSDB, so it comes back with no history."""
        ident = self._request(name, "stop", {"signal": signal, "wipe": wipe_data})
        self._await(ident, f"{name} stopped", timeout)

    def start_component(self, name: str, timeout: float = 120) -> None:
        """Start a stopped component again (same ports, certificates, data); returns
        once its health check passes."""
        ident = self._request(name, "start", {})
        self._await(ident, f"{name} started and healthy", timeout)

    @contextlib.contextmanager
    def component_down(self, name: str, **stop: object) -> Iterator[None]:
        """`with cluster.component_down("kube-apiserver"): ...` - started again on exit."""
        self.stop_component(name, **stop)  # type: ignore[arg-type]
        try:
            yield
        finally:
            self.start_component(name)

    def _state(self) -> State:
        state = State.load(self.layout)
        if state is None:
            raise ControlError(f"no cluster state in {self.root}")
        return state

    def _request(self, name: str, action: str, extra: dict[str, object]) -> str:
        """Drop a request file for the supervisor; returns its id."""
        control = self.layout.control
        control.mkdir(exist_ok=True)
        ident = uuid.uuid4().hex
        body = json.dumps({"id": ident, "component": name, "action": action, **extra})
        tmp = control / f".{ident}.tmp"  # not *.json: the supervisor never reads it half-written
        tmp.write_text(body)
        tmp.rename(control / f"{time.time_ns()}-{name}-{action}.json")
        return ident

    def _await(self, ident: str, what: str, timeout: float) -> None:
        """Until the supervisor has served request `ident`; its error, if any, raised."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._state().control.get("id") == ident:
                if error := self._state().control.get("error"):
                    raise ControlError(error)
                return
            time.sleep(0.1)
        raise ControlError(f"timed out after {timeout:.0f}s waiting for {what}")
