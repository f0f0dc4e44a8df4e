"""Child processes in their own process groups, with logs in files.

Every component and every pod container runs in a fresh session, so that a
stop reaches the whole tree it spawned (a shell, a uvicorn worker...) and
nothing outlives the cluster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on ``host``; free unless someone races us."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def spawn(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start ``argv`` in a new session with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it is already gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    return signal_group(pgid, 0)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> int | None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds; reap the leader."""
    pgid = proc.pid  # leader of its own session: pgid == pid
    signal_group(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=max(grace, 0.0))
    except subprocess.TimeoutExpired:
        signal_group(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
    # Children that ignored SIGTERM while the leader exited still share the group.
    signal_group(pgid, signal.SIGKILL)
    return proc.returncode


def kill_group(pgid: int, grace: float = 5.0) -> None:
    """Stop a group we did not start in this process (e.g. after a crash): TERM, then KILL."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.1)
    with contextlib.suppress(Exception):
        signal_group(pgid, signal.SIGKILL)
