"""Build and locate the wildcard-bind shim (bindshim.c) the node preloads into containers.

Compiled once per source text into the user's cache with the system C
compiler; a missing compiler is a missing prerequisite, like a missing etcd.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("bindshim.c")
POD_IP_ENV = "MODELDEPLOY_DEVCLUSTER_POD_IP"


class ShimUnavailable(RuntimeError):
    """No C compiler to build the shim (the node cannot emulate per-pod networking)."""


def _cache_dir() -> Path:
    root = os.environ.get("MODELDEPLOY_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "modeldeploy"
    )
    return Path(root) / "devcluster"


def ensure(cache_dir: Path | None = None) -> Path:
    """The shared object for the current source, compiled if it is not cached yet."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    target = (cache_dir or _cache_dir()) / f"bindshim-{digest}.so"
    if target.is_file():
        return target
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise ShimUnavailable(
            "no C compiler (cc/gcc) to build the node's bind shim: install gcc (make system-deps)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(partial), str(SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    os.replace(partial, target)
    return target


def preload_env(env: dict[str, str], shim: Path, pod_ip: str) -> dict[str, str]:
    """`env` with the shim preloaded ahead of any LD_PRELOAD the container sets itself."""
    preload = " ".join(p for p in (str(shim), env.get("LD_PRELOAD", "")) if p)
    return {**env, "LD_PRELOAD": preload, POD_IP_ENV: pod_ip}
