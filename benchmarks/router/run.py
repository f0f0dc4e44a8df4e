"""Router benchmark: direct vs router (weight 0, weight 50, 100% mirroring) vs nginx.

One run, same upstream, same load (wrk, POST of a 4-row OIP v2 request), side
by side on this machine. Prints throughput, p50, p99 and the ratios the issue
sets targets for. Run from the repository root:

    .venv/bin/python -m benchmarks router [--duration 8] [--rounds 3] [--quick] [--no-pin]

By default the processes are pinned: the shadow predictor (which in a cluster
runs in pods of its own, on other nodes) gets a CPU to itself and everything
on the primary path (wrk, routers, nginx, stable and canary predictors) the
other CPUs, identically for every target. The mirroring ratio then measures
what mirroring costs the proxy itself on the primary path, not the shadow
model's inference competing for the same cores. `--no-pin` leaves placement
to the kernel (the shadow's work then competes with the primary's).

Needs `wrk` and `nginx` (Debian: apt-get install wrk nginx-light).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from modeldeploy_devcluster import procs as process_groups

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
UPSTREAM_APP = REPO / "tests" / "router" / "upstream_app.py"
ROUTER = Path(sys.executable).with_name("modeldeploy-router")
PATH = "/v2/models/iris/infer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    proxy_cpu_us: float = 0.0  # CPU of the proxy process(es) per request; 0 for direct
    main_cpu_us: float = 0.0  # the same without child processes (router: its event loop)
    # CPU of everything on the primary path (wrk, proxy main process, stable/canary
    # predictors) per request: what p50 at c32 follows when nothing else runs there.
    primary_cpu_us: float = 0.0
    p50_c1_ms: float = 0.0  # p50 with one connection: latency without queueing
    # Router mirror copies over both wrk runs of the target (from its /metrics).
    mirror: dict[str, float] = field(default_factory=dict)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def parse_wrk(name: str, out: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Result(name, rps, p50, p99, errors, requests=requests)


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


MIRROR_RESULTS = ("sent", "dropped", "error")


def mirror_counts(base: str) -> dict[str, float]:
    """The router's modeldeploy_router_mirror_total by result."""
    from prometheus_client.parser import text_string_to_metric_families

    counts = dict.fromkeys(MIRROR_RESULTS, 0.0)
    text = httpx.get(f"{base}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "modeldeploy_router_mirror_total":
                counts[sample.labels["result"]] = sample.value
    return counts


def run_wrk(cmd: list[str], placement: Placement) -> str:
    return subprocess.run(
        cmd,
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=Placement.preexec(placement.primary),
    ).stdout


def wrk_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished wrk runs
    return usage.ru_utime + usage.ru_stime


def wrk(
    name: str, base: str, proxy_pid: int | None, args: argparse.Namespace, fleet: Fleet
) -> Result:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s"]
    cmd += ["--latency", "-s", str(HERE / "post.lua"), base + PATH]
    mirrored = name.startswith("router mirror")
    before = cpu_seconds(proxy_pid) if proxy_pid else 0.0
    main_before = cpu_seconds(proxy_pid, with_children=False) if proxy_pid else 0.0
    primary_before = fleet.primary_cpu_seconds() + wrk_cpu_seconds()
    counts_before = mirror_counts(base) if mirrored else {}
    out = run_wrk(cmd, args.placement)
    cpu = cpu_seconds(proxy_pid) - before if proxy_pid else 0.0
    main_cpu = cpu_seconds(proxy_pid, with_children=False) - main_before if proxy_pid else 0.0
    primary_cpu = fleet.primary_cpu_seconds() + wrk_cpu_seconds() - primary_before
    result = parse_wrk(name, out)
    result.proxy_cpu_us = cpu * 1e6 / max(result.requests, 1)
    result.main_cpu_us = main_cpu * 1e6 / max(result.requests, 1)
    result.primary_cpu_us = primary_cpu * 1e6 / max(result.requests, 1)
    single = ["wrk", "-t1", "-c1", f"-d{args.duration}s", *cmd[4:]]
    c1 = parse_wrk(name, run_wrk(single, args.placement))
    result.p50_c1_ms = c1.p50_ms
    line = (
        f"  {name:<20} {result.rps:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  proxy CPU {result.proxy_cpu_us:5.0f} us/req  "
        f"p50 at c1 {result.p50_c1_ms:5.2f} ms  errors {result.errors}  "
        f"primary path CPU {result.primary_cpu_us:4.0f} us/req"
    )
    if name.startswith("router"):
        line += f"  (main process {result.main_cpu_us:.0f} us/req)"
    if mirrored:
        # Copies still in the queue are counted by the next scrape's delta.
        after = mirror_counts(base)
        result.mirror = {k: after[k] - counts_before[k] for k in MIRROR_RESULTS}
        result.mirror["requests"] = result.requests + c1.requests
        line += "\n" + " " * 23 + _mirror_line(result.mirror)
    print(line, flush=True)
    return result


def _mirror_line(counts: dict[str, float]) -> str:
    return (
        f"mirror: {counts['sent']:.0f} sent, {counts['dropped']:.0f} dropped, "
        f"{counts['error']:.0f} errors for {counts['requests']:.0f} requests"
    )


def warm_up(base: str, args: argparse.Namespace) -> None:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", "-d2s"]
    run_wrk([*cmd, "-s", str(HERE / "post.lua"), base + PATH], args.placement)


def median_result(name: str, runs: list[Result]) -> Result:
    mirror: dict[str, float] = {}
    for r in runs:
        for key, value in r.mirror.items():
            mirror[key] = mirror.get(key, 0.0) + value
    return Result(
        name,
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        sum(r.requests for r in runs),
        statistics.median(r.proxy_cpu_us for r in runs),
        statistics.median(r.main_cpu_us for r in runs),
        statistics.median(r.primary_cpu_us for r in runs),
        statistics.median(r.p50_c1_ms for r in runs),
        mirror,
    )


def start_upstreams(fleet: Fleet, args: argparse.Namespace) -> dict[str, str]:
    urls = {}
    for track in ("stable", "canary", "shadow"):
        port = free_port()
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
        port = free_port()
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
        if fleet.placement.shadow is not None:
            # The router's shadow process only serves the shadow: it goes with it.
            for child in children(proc.pid):
                os.sched_setaffinity(child, fleet.placement.shadow)
        bases[name] = (url, proc.pid)
    return bases


def start_nginx(fleet: Fleet, up: dict[str, str], workdir: Path) -> dict[str, tuple[str, int]]:
    ports = {"W0": free_port(), "W50": free_port(), "MIRROR": free_port()}
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


TARGETS = (
    "direct", "router w0", "router w50", "router mirror", "router mirror inline",
    "nginx w0", "nginx w50", "nginx mirror",
)  # fmt: skip
NAN = float("nan")
NOT_RUN = Result("not run", NAN, NAN, NAN, 0, 0, NAN, NAN, NAN, NAN)


# Which placement each target is judged in. Pinned, the primary path (wrk,
# proxy, predictor) shares one CPU, which the direct run shares with one
# process less: right for isolating what mirroring costs the proxy, unfair
# to the proxy's throughput and added latency. Unpinned, the shadow's model
# competes with the primary's: unfair to mirroring.
JUDGED_PINNED = {"router mirror p50 / router w0 p50": True,
                 "router w0 throughput / direct": False,
                 "router added p50 / nginx added p50": False}  # fmt: skip


def report(measured: dict[str, Result], pinned: bool) -> dict[str, float]:
    # Ratios of targets left out with --only come out NaN and are skipped.
    results = collections.defaultdict(lambda: NOT_RUN, measured)
    direct, w0 = results["direct"], results["router w0"]
    ngx = results["nginx w0"]
    # Added latency from the one-connection runs: at concurrency 32 queueing
    # in the upstream dominates p50 and hides what a proxy adds.
    router_added = w0.p50_c1_ms - direct.p50_c1_ms
    nginx_added = ngx.p50_c1_ms - direct.p50_c1_ms
    ratios = {
        "router w0 throughput / direct": w0.rps / direct.rps,
        "router w50 throughput / direct": results["router w50"].rps / direct.rps,
        "router mirror throughput / direct": results["router mirror"].rps / direct.rps,
        "nginx w0 throughput / direct": ngx.rps / direct.rps,
        "router added p50 ms (c1)": router_added,
        "nginx added p50 ms (c1)": nginx_added,
        "router added p50 / nginx added p50": router_added / nginx_added
        if nginx_added > 0
        else float("nan"),  # nginx's addition is below the noise: no ratio
        "router mirror p50 / router w0 p50": results["router mirror"].p50_ms / w0.p50_ms,
        "router mirror p50 / router w0 p50 (c1)": results["router mirror"].p50_c1_ms / w0.p50_c1_ms,
        "inline mirror p50 / router w0 p50": results["router mirror inline"].p50_ms / w0.p50_ms,
        "inline mirror p50 / router w0 p50 (c1)": (
            results["router mirror inline"].p50_c1_ms / w0.p50_c1_ms
        ),
        "router w0 CPU / nginx w0 CPU per request": w0.proxy_cpu_us / max(ngx.proxy_cpu_us, 1e-9),
        # Load-independent form of the mirroring ratio: at c32 the primary CPU is
        # saturated, so p50 follows its CPU per request unless other load shares it.
        "router mirror / w0 primary-path CPU per request": (
            results["router mirror"].primary_cpu_us / max(w0.primary_cpu_us, 1e-9)
        ),
        "inline mirror / w0 primary-path CPU per request": (
            results["router mirror inline"].primary_cpu_us / max(w0.primary_cpu_us, 1e-9)
        ),
        "nginx mirror / w0 primary-path CPU per request": (
            results["nginx mirror"].primary_cpu_us / max(ngx.primary_cpu_us, 1e-9)
        ),
        "nginx mirror p50 / nginx w0 p50": results["nginx mirror"].p50_ms / ngx.p50_ms,
    }
    targets = {
        "router w0 throughput / direct": (">=", 0.85),
        "router added p50 / nginx added p50": ("<=", 2.0),
        "router mirror p50 / router w0 p50": ("<=", 1.10),
    }
    print("\nratios")
    ratios = {
        key: value
        for key, value in ratios.items()
        if value == value
        or (
            key == "router added p50 / nginx added p50"
            and {"direct", "router w0", "nginx w0"} <= measured.keys()
        )
    }
    for key, value in ratios.items():
        target = targets.get(key)
        verdict = ""
        if target and value != value:  # NaN
            verdict = "  (undefined: nginx's added p50 not above zero in this run)"
        elif target and JUDGED_PINNED[key] != pinned:
            verdict = f"  (target {target[0]} {target[1]}: judged " + (
                "pinned, without --no-pin)" if JUDGED_PINNED[key] else "with --no-pin)"
            )
        elif target:
            ok = value >= target[1] if target[0] == ">=" else value <= target[1]
            verdict = f"  (target {target[0]} {target[1]}: {'met' if ok else 'MISSED'})"
        print(f"  {key:<48} {value:7.3f}{verdict}")
    return ratios


def predictor_installed() -> bool:
    return importlib.util.find_spec("modeldeploy_predictor.cli") is not None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks router",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--duration", type=int, default=8, help="seconds per target and pass")
    p.add_argument("--quick", action="store_true", help="--duration 3 --rounds 1")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--upstream",
        choices=["auto", "test", "predictor"],
        default="auto",
        help="predictor: modeldeploy-predictor serving an iris bundle; test:\n"
        "tests/router/upstream_app.py; auto: predictor when installed",
    )
    p.add_argument("--bundle", type=Path, help="bundle for --upstream predictor (default: iris)")
    p.add_argument(
        "--predictor-bin",
        default=str(Path(sys.executable).with_name("modeldeploy-predictor")),
        help="the modeldeploy-predictor executable",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="targets are run in turn this many times; medians are reported",
    )
    p.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pin the shadow predictor to a CPU of its own and the primary path\n"
        "(wrk, routers, nginx, stable/canary predictors) to the others, so the\n"
        "mirroring ratio measures the proxy's own cost (default: on)",
    )
    p.add_argument(
        "--only",
        type=lambda v: [n.strip() for n in v.split(",") if n.strip()],
        help="comma-separated targets to run (e.g. 'router w0,router mirror');\n"
        "ratios that need a target left out are not printed",
    )
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    args.placement = Placement.plan(args.pin)
    if args.only and (unknown := set(args.only) - set(TARGETS)):
        p.error(f"--only: unknown targets {sorted(unknown)}; known: {', '.join(TARGETS)}")
    if args.quick:
        args.duration, args.rounds = 3, 1
    if args.upstream == "auto":
        args.upstream = "predictor" if predictor_installed() else "test"
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            p.error(f"{tool} not found: apt-get install wrk nginx-light")
    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp:
        fleet = Fleet(Path(tmp), args.placement)
        try:
            if args.upstream == "predictor" and args.bundle is None:
                args.bundle = make_bundle(args.predictor_bin, Path(tmp))
            up = start_upstreams(fleet, args)
            targets: dict[str, tuple[str, int | None]] = {"direct": (up["stable"], None)}
            targets.update(start_routers(fleet, up))
            targets.update(start_nginx(fleet, up, Path(tmp)))
            if args.only:
                targets = {name: targets[name] for name in args.only}
            print(
                f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
                f"POST {PATH} (4 rows), upstream: {args.upstream}, {args.rounds} rounds\n"
                f"{args.placement.describe()}"
            )
            for base, _ in targets.values():
                warm_up(base, args)
            runs: dict[str, list[Result]] = {name: [] for name in targets}
            # Interleaved rounds: drift in the machine's load hits every target alike.
            for round_ in range(1, args.rounds + 1):
                print(f"round {round_}")
                for name, (base, pid) in targets.items():
                    runs[name].append(wrk(name, base, pid, args, fleet))
        finally:
            fleet.stop()
    results = {name: median_result(name, r) for name, r in runs.items()}
    print("\nmedians")
    for r in results.values():
        print(
            f"  {r.name:<20} {r.rps:9.0f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms"
            f"  proxy CPU {r.proxy_cpu_us:5.0f} us/req  p50 at c1 {r.p50_c1_ms:5.2f} ms"
            f"  primary path CPU {r.primary_cpu_us:4.0f} us/req"
        )
        if r.mirror:
            print(" " * 23 + _mirror_line(r.mirror) + " (all rounds)")
    ratios = report(results, pinned=args.placement.shadow is not None)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"results": [asdict(r) for r in results.values()], "ratios": ratios}, indent=2
            )
        )

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
