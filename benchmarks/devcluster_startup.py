"""Local-cluster start-up time and idle memory (run by hand, never in tests).

    .venv/bin/python benchmarks/devcluster_startup.py [--runs 3] [--idle 20]

Starts the cluster in a temp dir (warm binary cache assumed), records the
wall time of ``up`` and each component's seconds-to-ready from state.json,
lets it idle, sums the resident memory of every process it started, stops it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from modeldeploy_devcluster import launcher
from modeldeploy_devcluster.state import Layout, State


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(idle: float) -> dict:
    root = Path(tempfile.mkdtemp(prefix="mddc-bench-")) / "cluster"
    start = time.monotonic()
    launcher.up(root)
    wall = time.monotonic() - start
    try:
        time.sleep(idle)  # let start-up churn settle before measuring "idle"
        state = State.load(Layout(root))
        pids = dict(state.components, supervisor=state.supervisor_pid)
        memory = {name: round(rss_mib(pid), 1) for name, pid in pids.items()}
        return {
            "up_seconds": round(wall, 2),
            "ready_by_component": state.timings,
            "rss_mib": memory,
        }
    finally:
        launcher.down(root)
        root.parent.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args()
    runs = [one_run(args.idle) for _ in range(args.runs)]
    control_plane = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
    print(json.dumps(runs, indent=2))
    ups = [r["up_seconds"] for r in runs]
    cp = [sum(r["rss_mib"][c] for c in control_plane) for r in runs]
    total = [sum(r["rss_mib"].values()) for r in runs]
    med = statistics.median
    print(f"up to ready: median {med(ups):.1f}s (min {min(ups):.1f}, max {max(ups):.1f})")
    print(f"idle RSS etcd+apiserver+controller-manager+scheduler: median {med(cp):.0f} MiB")
    print(f"idle RSS of everything (+ prometheus, node, supervisor): median {med(total):.0f} MiB")


if __name__ == "__main__":
    main()
