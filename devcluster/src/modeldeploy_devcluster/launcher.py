"""``up`` / ``down`` / ``status`` of a cluster living in a state directory.

``up`` starts the supervisor detached (its own session, so it outlives the
shell or test process that asked) and waits until it reports ready or
failed; ``down`` asks it to stop and then makes sure every process group it
recorded is gone, so nothing leaks from one run to the next.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from modeldeploy_devcluster import binaries, procs
from modeldeploy_devcluster.cluster import Cluster
from modeldeploy_devcluster.node import images
from modeldeploy_devcluster.state import DEFAULT_NODE, Layout, State, pid_alive


class ClusterStartError(RuntimeError):
    pass


def running(layout: Layout) -> State | None:
    state = State.load(layout)
    if state and state.phase == "ready" and pid_alive(state.supervisor_pid):
        return state
    return None


def _clear(layout: Layout) -> None:
    """Remove an old state dir, refusing anything that is not one (``--dir ~`` say)."""
    root = layout.root
    if not root.exists():
        return
    if any(root.iterdir()) and not layout.state_file.exists():
        raise ClusterStartError(f"{root} exists and is not a devcluster state directory")
    _kill_leftovers(layout, State.load(layout))
    shutil.rmtree(root)


def _kill_leftovers(layout: Layout, state: State | None) -> None:
    for pgid_file in layout.pods.glob("*/*.pgid") if layout.pods.exists() else []:
        with contextlib.suppress(OSError, ValueError):
            procs.kill_group(int(pgid_file.read_text()), grace=2)
    if state:
        for pid in state.components.values():
            procs.kill_group(pid, grace=5)


def up(
    root: Path,
    scrape_interval: str = "2s",
    images_file: Path | None = None,
    timeout: float = 180.0,
    node_name: str = DEFAULT_NODE,
    owner_pid: int = 0,
) -> Cluster:
    """Start a cluster in ``root`` (or return the one already running there).

    With ``owner_pid`` the cluster stops by itself once that process is gone,
    so a test run killed before its teardown leaks nothing.
    """
    layout = Layout(root)
    if running(layout):
        return Cluster.from_dir(root)
    binaries.find()  # raises BinariesMissing with instructions before anything starts
    _clear(layout)
    root.mkdir(parents=True)
    State().save(layout)  # marks the directory as ours from the first moment
    images.write_file(layout.images, images.load(images_file))
    log_path = root / "supervisor.log"
    argv = [
        sys.executable,
        "-m",
        "modeldeploy_devcluster.supervisor",
        f"--dir={root}",
        f"--scrape-interval={scrape_interval}",
        f"--node-name={node_name}",
        f"--owner-pid={owner_pid}",
    ]
    sup = procs.spawn(argv, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = State.load(layout)
        if state and state.phase == "ready":
            return Cluster.from_dir(root)
        if state and state.phase == "failed":
            sup.wait(timeout=60)
            raise ClusterStartError(state.error)
        if sup.poll() is not None:
            raise ClusterStartError(
                f"supervisor exited with code {sup.returncode}; last lines of {log_path}:\n"
                + procs.log_tail(log_path)
            )
        time.sleep(0.2)
    down(root, keep=True)
    raise ClusterStartError(
        f"cluster not ready after {timeout:.0f}s; last lines of {log_path}:\n"
        + procs.log_tail(log_path)
    )


def down(root: Path, timeout: float = 60.0, keep: bool = False) -> bool:
    """Stop the cluster in ``root``; True if something was running."""
    layout = Layout(root)
    state = State.load(layout)
    was_running = bool(state and pid_alive(state.supervisor_pid))
    if state and was_running:
        os.kill(state.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(state.supervisor_pid):
            time.sleep(0.1)
        if pid_alive(state.supervisor_pid):
            os.kill(state.supervisor_pid, signal.SIGKILL)
        # Reap it when we are its parent (the pytest plugin, `up` in this process).
        with contextlib.suppress(ChildProcessError):
            os.waitpid(state.supervisor_pid, os.WNOHANG)
    _kill_leftovers(layout, state)
    if not keep and layout.state_file.exists():
        shutil.rmtree(root, ignore_errors=True)
    return was_running


def foreground(root: Path, scrape_interval: str, images_file: Path | None, node_name: str) -> int:
    """Run the supervisor in this process (Ctrl-C stops everything)."""
    from modeldeploy_devcluster import supervisor

    layout = Layout(root)
    if running(layout):
        print(f"a cluster is already running in {root}", file=sys.stderr)
        return 1
    binaries.find()
    _clear(layout)
    root.mkdir(parents=True)
    State().save(layout)  # marks the directory as ours from the first moment
    images.write_file(layout.images, images.load(images_file))
    return supervisor.run(layout, scrape_interval, node_name)
