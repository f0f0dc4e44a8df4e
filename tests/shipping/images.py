"""Build and run the project's images with podman, configured for this host.

Both the image tests and `hack/e2e-kind.sh` (through the same script,
hack/images.sh) build the images one way; this module only locates podman,
builds once per session (podman caches layers) and runs containers as
process groups that are always stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import yaml

from . import chart

CONTAINERS_CONF = chart.REPO / "hack" / "containers.conf"
# IMAGE_TAG as hack/images.sh reads it: sessions sharing one podman store can
# build and test their own tags without replacing each other's images.
TAG = (
    os.environ.get("IMAGE_TAG")
    or yaml.safe_load((chart.CHART / "Chart.yaml").read_text())["appVersion"]
)
OPERATOR = f"ghcr.io/modeldeploy/operator:{TAG}"
PREDICTOR = f"ghcr.io/modeldeploy/predictor:{TAG}"
PODMAN_MISSING = "podman is missing: `make system-deps` installs podman, buildah, runc, debootstrap"


def env() -> dict[str, str]:
    return {
        **os.environ,
        "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF)),
    }


def podman_available() -> bool:
    return shutil.which("podman") is not None


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env(), timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def build_all(timeout: float = 1800) -> None:
    """hack/images.sh: both images on the local base (cached layers make reruns quick)."""
    proc = subprocess.run(
        ["bash", str(chart.REPO / "hack" / "images.sh"), "all"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"hack/images.sh failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )


def inspect(image: str) -> dict[str, Any]:
    return json.loads(podman("image", "inspect", image).stdout)[0]


@contextlib.contextmanager
def running(image: str, *args: str, options: tuple[str, ...] = ()) -> Iterator[str]:
    """A detached container, hardened like the chart's pods; removed on exit."""
    name = f"modeldeploy-test-{uuid.uuid4().hex[:10]}"
    podman(
        "run", "--detach", "--name", name, "--read-only", "--user", "65532:65532",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--network", "host",
        *options, image, *args,
    )  # fmt: skip
    try:
        yield name
    finally:
        podman("rm", "--force", "--time", "5", name, check=False)


def logs(name: str) -> str:
    proc = podman("logs", name, check=False)
    return proc.stdout + proc.stderr
