"""The kernel's scheduler autogroups during a run.

With `kernel.sched_autogroup_enabled` (the default on many hosts) the CPU
scheduler shares CPU time between sessions first, then between the tasks of
a session. Every process of the fleet starts a session of its own, but the
router's shadow process is its child and shares the router's: its CPU on the
shadow's CPU lowers the router's share on the primary CPU, against wrk's and
the predictor's sessions. That is a property of how this host groups
processes, not of the router's work (measured in benchmarks/README.md,
Router), so by default a run switches autogroups off and restores the
setting afterwards. In a Kubernetes pod the router and its shadow process
share the pod's CPU weight the same way: docs/router.md says to size the
router's CPU request for mirroring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None  # no such setting: a kernel without autogroups


@contextlib.contextmanager
def autogroups(turn_off: bool, path: Path = AUTOGROUP) -> Iterator[str]:
    """Switch autogroups off for the block when asked and possible, restore
    them after; yields a line for the output's header saying which it was."""
    before = _read(path)
    if before is None:
        yield "scheduler autogroups: not in this kernel"
        return
    if before == "0":
        yield "scheduler autogroups: off (the host's setting)"
        return
    if not turn_off:
        yield "scheduler autogroups: on (--keep-autogroups): the shadow process shares the router's"
        return
    try:
        path.write_text("0")
    except OSError as exc:
        yield f"scheduler autogroups: on, could not switch them off ({exc.strerror}; run as root)"
        return
    try:
        yield "scheduler autogroups: off for this run (on before; restored at exit)"
    finally:
        path.write_text(before)
