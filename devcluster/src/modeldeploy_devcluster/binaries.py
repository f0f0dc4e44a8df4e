"""Where the pinned control-plane binaries and Prometheus live.

The binaries (Prometheus included) are built by ``hack/build-binaries.sh`` into a cache keyed by
the versions in ``hack/versions.env``; the script itself answers "where"
(``build-binaries.sh dir``), so the cache layout has one owner.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# Debian's prometheus is built without Kubernetes service discovery, so the
# one from the cache is used (or an explicit MODELDEPLOY_PROMETHEUS_BIN).
PROMETHEUS_ENV = "MODELDEPLOY_PROMETHEUS_BIN"


class BinariesMissing(RuntimeError):
    """The cluster cannot start on this machine (not a bug: a missing prerequisite)."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    prometheus: Path


def _repo_script() -> Path | None:
    for base in (Path.cwd(), Path(__file__).resolve()):
        for parent in [base, *base.parents]:
            script = parent / "hack" / "build-binaries.sh"
            if script.is_file():
                return script
    return None


def bin_dir() -> Path | None:
    if env := os.environ.get("MODELDEPLOY_BIN_DIR"):
        return Path(env)
    script = _repo_script()
    if script is None:
        return None
    out = subprocess.run(
        ["bash", str(script), "dir"], capture_output=True, text=True, check=False, timeout=30
    )
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


# Tools a test may ask for by name, and the variable that overrides each.
TOOL_ENV = {"prometheus": PROMETHEUS_ENV, "helm": "HELM", "kubectl": "KUBECTL"}


def tool(name: str) -> Path | None:
    """A tool `make binaries` builds (prometheus, promtool, helm, kubectl...).

    Its override variable first, then the build cache, then PATH: one lookup for
    every test, so a fresh machine with only `make binaries` run finds them all.
    """
    if (env := TOOL_ENV.get(name)) and (override := os.environ.get(env)):
        return Path(override)
    directory = bin_dir()
    if directory and os.access(directory / name, os.X_OK):
        return directory / name
    found = shutil.which(name)
    return Path(found) if found else None


def find() -> Binaries:
    """Locate every binary or raise BinariesMissing naming what to run."""
    directory = bin_dir()
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in CONTROL_PLANE:
        candidate = directory / name if directory else None
        if candidate and os.access(candidate, os.X_OK):
            found[name] = candidate
        elif which := shutil.which(name):
            found[name] = Path(which)
        else:
            missing.append(name)
    prometheus = os.environ.get(PROMETHEUS_ENV)
    if not prometheus and directory and os.access(directory / "prometheus", os.X_OK):
        prometheus = str(directory / "prometheus")
    if not prometheus:
        missing.append("prometheus")
    if missing or not prometheus:
        raise BinariesMissing(
            f"missing {', '.join(missing)} (looked in {directory or 'no bin dir'} and PATH): "
            "run `make binaries` (needs Go)"
        )
    return Binaries(
        etcd=found["etcd"],
        kube_apiserver=found["kube-apiserver"],
        kube_controller_manager=found["kube-controller-manager"],
        kube_scheduler=found["kube-scheduler"],
        prometheus=Path(prometheus),
    )
