"""The router benchmark's processes: where they run, how they start and stop.

Upstreams (predictor or the test app), routers and nginx, each in its own
process group, pinned per `Placement`, with their CPU time read from /proc.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from modeldeploy_devcluster import procs as process_groups

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
UPSTREAM_APP = REPO / "tests" / "router" / "upstream_app.py"
ROUTER = Path(sys.executable).with_name("modeldeploy-router")
PATH = "/v2/models/iris/infer"


@dataclass(frozen=True)
class Placement:
    """CPU sets for the primary path and for what only serves the shadow
    (None: no pinning, the kernel places everything)."""

    primary: frozenset[int] | None = None
    shadow: frozenset[int] | None = None

    @classmethod
    def plan(cls, pin: bool) -> Placement:
        if not pin:
            return cls()
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit(f"pinning needs 2 CPUs, this process may use {cpus}: use --no-pin")
        return cls(primary=frozenset(cpus[:-1]), shadow=frozenset(cpus[-1:]))

    def describe(self) -> str:
        if self.primary is None:
            return "no CPU pinning (--no-pin): shadow predictor competes with the primary path"
        return (
            f"pinned: shadow predictor on CPU {_cpus(self.shadow)}; wrk, routers, nginx, "
            f"stable and canary predictors on CPU {_cpus(self.primary)}"
        )

    @staticmethod
    def preexec(cpus: frozenset[int] | None):
        """A Popen preexec_fn that pins the child (and what it forks) to `cpus`."""
        if cpus is None:
            return None
        return lambda: os.sched_setaffinity(0, cpus)


def _cpus(cpus: frozenset[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus or ()))


class Fleet:
    """Processes of the run, each in its own group, all stopped at exit."""

    def __init__(self, workdir: Path, placement: Placement) -> None:
        self.workdir = workdir
        self.placement = placement
        self.procs: list[subprocess.Popen] = []
        # (pid, count its children): what runs on the primary path's CPUs. A
        # router's child is its shadow process, which goes with the shadow.
        self.primary: list[tuple[int, bool]] = []

    def primary_cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid, with_children) for pid, with_children in self.primary)

    def start(
        self, name: str, cmd: list[str], ready_url: str | None, shadow_only: bool = False
    ) -> subprocess.Popen:
        cpus = self.placement.shadow if shadow_only else self.placement.primary
        with open(self.workdir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=Placement.preexec(cpus),
            )
        self.procs.append(proc)
        if not shadow_only:
            self.primary.append((proc.pid, not name.startswith("router")))
        if ready_url is None:
            return proc
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text()[-2000:]
                raise SystemExit(f"{name} exited:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(ready_url, timeout=0.5)
                return proc
            time.sleep(0.1)
        raise SystemExit(f"{name} did not come up")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            process_groups.stop(proc, grace=10.0)


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def cpu_seconds(pid: int, with_children: bool = True) -> float:
    """utime + stime of a process and its children (nginx's workers, the
    router's shadow process)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid, *children(pid)] if with_children else [pid]
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def start_upstreams(fleet: Fleet, args: argparse.Namespace) -> dict[str, str]:
    urls = {}
    for track in ("stable", "canary", "shadow"):
        port = process_groups.free_port()
        urls[track] = f"http://127.0.0.1:{port}"
        if args.upstream == "predictor":
            cmd = [args.predictor_bin, "serve", "--bundle", str(args.bundle), "--host"]
            cmd += ["127.0.0.1", "--port", str(port), "--track", track, "--log-level", "warning"]
            ready = f"{urls[track]}/v2/health/ready"
        else:
            cmd = [
                sys.executable,
                str(UPSTREAM_APP),
                "--port",
                str(port),
                "--name",
                track,
                "--disagree-percent",
                "10" if track == "shadow" else "0",
            ]
            ready = f"{urls[track]}/v2/health/live"
        fleet.start(f"upstream-{track}", cmd, ready, shadow_only=track == "shadow")
    return urls


def make_bundle(predictor_bin: str, workdir: Path) -> Path:
    """An iris classifier bundle made with the predictor's own bundle command."""
    import csv

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), workdir / "model.joblib")
    with open(workdir / "reference.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width"])
        writer.writerows(features.tolist())
    out = workdir / "bundle"
    subprocess.run(
        [
            predictor_bin,
            "bundle",
            "--model",
            str(workdir / "model.joblib"),
            "--reference",
            str(workdir / "reference.csv"),
            "--name",
            "iris",
            "--version",
            "1.0.0",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


def start_routers(fleet: Fleet, up: dict[str, str]) -> dict[str, tuple[str, int]]:
    setups = {
        "router w0": ["--backend", f"canary={up['canary']}", "--weight", "0"],
        "router w50": ["--backend", f"canary={up['canary']}", "--weight", "50"],
        "router mirror": ["--shadow", up["shadow"], "--mirror-percent", "100"],
        # The shadow path on the router's own event loop (before the shadow process).
        "router mirror inline": [
            "--shadow", up["shadow"], "--mirror-percent", "100", "--mirror-in-process",
        ],
    }  # fmt: skip
    bases = {}
    for name, extra in setups.items():
        port = process_groups.free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [
            str(ROUTER),
            "--port",
            str(port),
            "--model",
            "iris",
            "--log-level",
            "warning",
            "--backend",
            f"stable={up['stable']}",
            *extra,
        ]
        proc = fleet.start(name.replace(" ", "-"), cmd, f"{url}/healthz")
        pin_shadow_children(fleet, proc.pid)
        bases[name] = (url, proc.pid)
    return bases


# target name -> floor.py --server (the first is the router's own stack)
FLOOR_SERVERS = {
    "floor w0": "uvicorn",
    "floor aiohttp w0": "aiohttp",
    "floor granian w0": "granian",
}


def start_floor(fleet: Fleet, up: dict[str, str], names: list[str]) -> dict[str, tuple[str, int]]:
    """The stack's floor (floor.py) in front of the stable predictor, once per
    server named (FLOOR_SERVERS)."""
    bases = {}
    for name in names:
        port = process_groups.free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "benchmarks.router.floor", "--port", str(port)]
        cmd += ["--upstream", up["stable"], "--server", FLOOR_SERVERS[name]]
        proc = fleet.start(name.replace(" ", "-"), cmd, f"{url}/healthz")
        bases[name] = (url, proc.pid)
    return bases


def pin_shadow_children(fleet: Fleet, pid: int) -> int:
    """Put every thread of a router's children (its shadow process, which only
    serves the shadow) on the shadow's CPUs; returns how many threads were
    elsewhere. Called again before each run: a shadow process restarted by
    the router inherits the router's CPUs."""
    cpus = fleet.placement.shadow
    moved = 0
    if cpus is None:
        return moved
    for child in children(pid):
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{child}/task"):
                with contextlib.suppress(OSError):
                    if os.sched_getaffinity(int(tid)) != cpus:
                        os.sched_setaffinity(int(tid), cpus)
                        moved += 1
    return moved


def busy_seconds(cpus: frozenset[int] | None) -> float:
    """CPU time spent by anything (not idle, not iowait) on `cpus`, from /proc/stat."""
    if cpus is None:
        return float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(values) - values[3] - values[4] - values[7]
    return total / tick


def start_nginx(fleet: Fleet, up: dict[str, str], workdir: Path) -> dict[str, tuple[str, int]]:
    ports = {key: process_groups.free_port() for key in ("W0", "W50", "MIRROR")}
    conf = (HERE / "nginx.conf.in").read_text()
    values = {
        "DIR": str(workdir),
        "STABLE": up["stable"][7:],
        "CANARY": up["canary"][7:],
        "SHADOW": up["shadow"][7:],
        **{f"PORT_{k}": str(v) for k, v in ports.items()},
    }
    for key, value in values.items():
        conf = conf.replace(f"@{key}@", value)
    (workdir / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    cmd = [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", "stderr"]
    base = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
    pid = fleet.start("nginx", cmd, base["W0"] + "/v2/health/live").pid
    names = {"W0": "nginx w0", "W50": "nginx w50", "MIRROR": "nginx mirror"}
    return {names[k]: (url, pid) for k, url in base.items()}
