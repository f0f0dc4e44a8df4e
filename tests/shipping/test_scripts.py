"""The packaging scripts: syntax, the honest kind skip, and the sync check."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from . import chart

SCRIPTS = [
    "images.sh",
    "base-image.sh",
    "e2e-kind.sh",
    "kind-node-image.sh",
    "kind/images.sh",
    "kind/metrics-server.sh",
    "sync-crd.sh",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_syntax(script: str) -> None:
    proc = subprocess.run(
        ["bash", "-n", str(chart.REPO / "hack" / script)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("ci", ["", "true"])
def test_e2e_kind_skips_clearly_without_a_container_engine(tmp_path, ci: str) -> None:
    # A PATH with bash and coreutils but neither podman nor docker: the script
    # says why it does nothing; that is a pass only outside CI.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dirname", "awk", "date", "cat", "mkdir"):
        found = shutil.which(tool)
        assert found, tool
        (bindir / tool).symlink_to(found)
    proc = subprocess.run(
        ["bash", str(chart.REPO / "hack" / "e2e-kind.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bindir), "CI": ci},
        timeout=60,
    )
    assert "SKIP make e2e-kind: no container engine runs here" in proc.stderr
    assert proc.returncode == (1 if ci else 0), proc.stderr
