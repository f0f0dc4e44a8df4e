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
to the kernel (the shadow's work then competes with the primary's). The
kernel's scheduler autogroups are switched off for the run and restored
after (`--keep-autogroups` leaves them on; benchmarks/router/sched.py says why).

Needs `wrk` and `nginx` (Debian: apt-get install wrk nginx-light).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from benchmarks.router.fleet import (
    FLOOR_SERVERS,
    HERE,
    PATH,
    Fleet,
    Placement,
    busy_seconds,
    cpu_seconds,
    make_bundle,
    pin_shadow_children,
    start_floor,
    start_nginx,
    start_routers,
    start_upstreams,
)
from benchmarks.router.sched import autogroups


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
    # CPU time per request that anything else took on the primary path's CPUs
    # (other jobs on a shared machine; NaN unpinned): when the shadow's CPU is
    # full, that load moves here and p50 at c32 rises with it.
    other_cpu_us: float = 0.0


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
    if proxy_pid and name.startswith("router") and (moved := pin_shadow_children(fleet, proxy_pid)):
        print(f"  ({name}: {moved} shadow-process threads were off the shadow CPU; moved back)")
    counts_before = mirror_counts(base) if mirrored else {}
    before = cpu_seconds(proxy_pid) if proxy_pid else 0.0
    main_before = cpu_seconds(proxy_pid, with_children=False) if proxy_pid else 0.0
    primary_before = fleet.primary_cpu_seconds() + wrk_cpu_seconds()
    busy_before = busy_seconds(args.placement.primary)
    out = run_wrk(cmd, args.placement)
    busy = busy_seconds(args.placement.primary) - busy_before
    cpu = cpu_seconds(proxy_pid) - before if proxy_pid else 0.0
    main_cpu = cpu_seconds(proxy_pid, with_children=False) - main_before if proxy_pid else 0.0
    primary_cpu = fleet.primary_cpu_seconds() + wrk_cpu_seconds() - primary_before
    result = parse_wrk(name, out)
    result.proxy_cpu_us = cpu * 1e6 / max(result.requests, 1)
    result.main_cpu_us = main_cpu * 1e6 / max(result.requests, 1)
    result.primary_cpu_us = primary_cpu * 1e6 / max(result.requests, 1)
    result.other_cpu_us = max(busy - primary_cpu, 0.0) * 1e6 / max(result.requests, 1)
    single = ["wrk", "-t1", "-c1", f"-d{args.duration}s", *cmd[4:]]
    c1 = parse_wrk(name, run_wrk(single, args.placement))
    result.p50_c1_ms = c1.p50_ms
    line = (
        f"  {name:<20} {result.rps:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  proxy CPU {result.proxy_cpu_us:5.0f} us/req  "
        f"p50 at c1 {result.p50_c1_ms:5.2f} ms  errors {result.errors}  "
        f"primary path CPU {result.primary_cpu_us:4.0f} us/req  "
        f"other load there {result.other_cpu_us:4.0f} us/req"
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
        other_cpu_us=statistics.median(r.other_cpu_us for r in runs),
    )


TARGETS = (
    "direct", "router w0", "router w50", "router mirror", "router mirror inline",
    "floor w0", "floor aiohttp w0", "floor granian w0",
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
    ngx, floor = results["nginx w0"], results["floor w0"]
    # Added latency from the one-connection runs: at concurrency 32 queueing
    # in the upstream dominates p50 and hides what a proxy adds.
    router_added = w0.p50_c1_ms - direct.p50_c1_ms
    nginx_added = ngx.p50_c1_ms - direct.p50_c1_ms
    # floor.py: the router's server and client with nothing else on them
    floor_added = floor.p50_c1_ms - direct.p50_c1_ms

    def over_nginx(added: float) -> float:
        # nginx's addition below the noise (not above zero): no ratio
        return added / nginx_added if nginx_added > 0 else float("nan")

    ratios = {
        "router w0 throughput / direct": w0.rps / direct.rps,
        "router w50 throughput / direct": results["router w50"].rps / direct.rps,
        "router mirror throughput / direct": results["router mirror"].rps / direct.rps,
        "nginx w0 throughput / direct": ngx.rps / direct.rps,
        "router added p50 ms (c1)": router_added,
        "nginx added p50 ms (c1)": nginx_added,
        "router added p50 / nginx added p50": over_nginx(router_added),
        "floor added p50 ms (c1)": floor_added,
        "floor added p50 / nginx added p50": over_nginx(floor_added),
        "router added p50 over the floor's ms (c1)": router_added - floor_added,
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
        "router w0 throughput / direct": (">=", 0.9),
        "router added p50 / nginx added p50": ("<=", 4.0),
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
    p.add_argument(
        "--keep-autogroups",
        action="store_true",
        help="leave the scheduler's autogroups on (switched off for the run by\n"
        "default: with them the shadow process's CPU lowers the router's share)",
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
    with (
        tempfile.TemporaryDirectory(prefix="router-bench-") as tmp,
        autogroups(turn_off=not args.keep_autogroups) as scheduling,
    ):
        fleet = Fleet(Path(tmp), args.placement)
        try:
            if args.upstream == "predictor" and args.bundle is None:
                args.bundle = make_bundle(args.predictor_bin, Path(tmp))
            up = start_upstreams(fleet, args)
            targets: dict[str, tuple[str, int | None]] = {"direct": (up["stable"], None)}
            targets.update(start_routers(fleet, up))
            # the other servers' floors only when asked for (granian is not a dependency)
            floors = [n for n in FLOOR_SERVERS if n == "floor w0" or n in (args.only or ())]
            targets.update(start_floor(fleet, up, floors))
            targets.update(start_nginx(fleet, up, Path(tmp)))
            if args.only:
                targets = {name: targets[name] for name in args.only}
            print(
                f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
                f"POST {PATH} (4 rows), upstream: {args.upstream}, {args.rounds} rounds\n"
                f"{args.placement.describe()}\n{scheduling}"
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
            f"  other load there {r.other_cpu_us:4.0f} us/req"
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
