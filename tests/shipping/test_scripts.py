"""The packaging scripts: syntax, the honest kind skip, and the sync check."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from . import chart

SCRIPTS = ["images.sh", "base-image.sh", "e2e-kind.sh", "sync-crd.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_syntax(script: str) -> None:
    proc = subprocess.run(
        ["bash", "-n", str(chart.REPO / "hack" / script)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_e2e_kind_skips_clearly_without_docker(tmp_path) -> None:
    # A PATH with bash and coreutils but no docker: the script must say why it
    # does nothing, and not fail the make target.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dirname", "awk", "date", "cat"):
        found = shutil.which(tool)
        assert found, tool
        (bindir / tool).symlink_to(found)
    proc = subprocess.run(
        ["bash", str(chart.REPO / "hack" / "e2e-kind.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bindir)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "SKIP make e2e-kind: the docker CLI is not installed" in proc.stderr


def test_e2e_kind_here_skips_or_runs() -> None:
    """On this machine (no Docker daemon) it skips; with Docker + kind it is the real e2e."""
    if shutil.which("docker") and shutil.which("kind"):
        daemon = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
        if daemon.returncode == 0:
            pytest.skip("Docker and kind are present: run `make e2e-kind` itself")
    proc = subprocess.run(
        ["bash", str(chart.REPO / "hack" / "e2e-kind.sh")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("SKIP make e2e-kind: "), proc.stderr
