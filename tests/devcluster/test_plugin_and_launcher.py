"""The pytest plugin's skip/fail contract and the launcher's safety checks (no cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from modeldeploy_devcluster import binaries, launcher
from modeldeploy_devcluster.pytest_plugin import missing_tool
from modeldeploy_devcluster.state import Layout, State, pid_alive
from modeldeploy_devcluster.waiting import wait_for


def _run_cluster_test(tmp_path, ci: bool) -> subprocess.CompletedProcess:
    test = tmp_path / "test_needs_cluster.py"
    test.write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.cluster
            def test_uses_cluster(cluster):
                assert cluster.server
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPLOY_")}
    env["MODELDEPLOY_BIN_DIR"] = str(tmp_path / "no-binaries-here")
    env["PATH"] = os.path.dirname(sys.executable)  # no kube-apiserver etc. on PATH
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    return _pytest(test, env)


def _pytest(test, env: dict[str, str]) -> subprocess.CompletedProcess:
    """pytest on one generated test file, in its folder, with exactly `env`."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q", str(test)],
        cwd=test.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_binaries_skip_loudly_outside_ci(tmp_path) -> None:
    done = _run_cluster_test(tmp_path, ci=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert "LOCAL CLUSTER NOT AVAILABLE" in done.stdout
    assert "make binaries" in done.stdout


def test_missing_binaries_fail_under_ci(tmp_path) -> None:
    done = _run_cluster_test(tmp_path, ci=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CI=true and local cluster unavailable" in done.stdout


def test_up_refuses_to_wipe_a_directory_that_is_not_a_cluster(tmp_path, monkeypatch) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    monkeypatch.setattr(launcher.binaries, "find", lambda: None)
    with pytest.raises(launcher.ClusterStartError, match="not a devcluster state directory"):
        launcher.up(precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert launcher.down(precious) is False
    assert (precious / "thesis.tex").exists()
    assert Layout(precious).state_file.exists() is False


@pytest.mark.cluster
def test_a_cluster_stops_itself_when_its_owner_dies(tmp_path) -> None:
    """A test run killed before its teardown must not leak a cluster."""
    try:
        binaries.find()
    except binaries.BinariesMissing as exc:
        missing_tool(str(exc))
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    root = tmp_path / "owned"
    try:
        launcher.up(root, owner_pid=owner.pid)
        state = State.load(Layout(root))
        pids = [state.supervisor_pid, *state.components.values()]
        assert all(pid_alive(p) for p in pids)
        owner.kill()
        owner.wait()
        wait_for(
            lambda: not any(pid_alive(p) for p in pids),
            timeout=90,
            message=f"every process of the orphaned cluster ({pids}) to exit",
        )
    finally:
        owner.kill()
        launcher.down(root)


def test_tool_prefers_the_override_then_the_cache(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    built = cache / "promtool"
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)
    monkeypatch.setenv("MODELDEPLOY_BIN_DIR", str(cache))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert binaries.tool("promtool") == built
    assert binaries.tool("no-such-tool") is None
    monkeypatch.setenv("HELM", "/opt/helm")
    assert binaries.tool("helm") == Path("/opt/helm")


@pytest.mark.parametrize(
    ("ci", "go", "outcome"),
    [(False, False, "1 skipped"), (False, True, "1 failed"), (True, False, "1 failed")],
)
def test_a_missing_tool_skips_only_without_go_and_outside_ci(tmp_path, ci, go, outcome) -> None:
    test = tmp_path / "test_needs_tool.py"
    test.write_text(
        "from modeldeploy_devcluster.pytest_plugin import require_tool\n\n"
        "def test_tool():\n    require_tool('promtool')\n"
    )
    path = tmp_path / "bin"
    path.mkdir()
    if go:
        (path / "go").write_text("#!/bin/sh\n")
        (path / "go").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MODELDEPLOY_BIN_DIR")}
    env |= {"MODELDEPLOY_BIN_DIR": str(tmp_path / "none"), "PATH": str(path)}
    if ci:
        env["CI"] = "true"
    done = _pytest(test, env)
    assert outcome in done.stdout, done.stdout + done.stderr
    assert "run `make binaries`" in done.stdout
