"""Router benchmark: direct vs router (weight 0, weight 50, 100% mirroring) vs nginx.

One run, same upstream, same load (wrk, POST of a 4-row OIP v2 request), side
by side on this machine. Prints throughput, p50, p99 and the ratios the issue
sets targets for. Run from the repository root:

    .venv/bin/python -m benchmarks.router [--duration 10] [--connections 32]

Needs `wrk` and `nginx` (Debian: apt-get install wrk nginx-light).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
UPSTREAM_APP = REPO / "tests" / "router" / "upstream_app.py"
ROUTER = Path(sys.executable).with_name("modeldeploy-router")
PATH = "/v2/models/iris/infer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fleet:
    """Processes of the run, each in its own group, all stopped at exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, cmd: list[str], ready_url: str | None) -> None:
        with open(self.workdir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        if ready_url is None:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited; see {self.workdir / name}.log")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(ready_url, timeout=0.5)
                return
            time.sleep(0.1)
        raise SystemExit(f"{name} did not come up")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


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
    return Result(name, rps, p50, p99, errors)


def wrk(name: str, base: str, args: argparse.Namespace) -> Result:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "-s",
        str(HERE / "post.lua"),
        base + PATH,
    ]
    warm = [*cmd[:3], "-d2s", *cmd[4:]]
    subprocess.run(warm, check=True, capture_output=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = parse_wrk(name, out)
    print(
        f"  {name:<14} {result.rps:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}",
        flush=True,
    )
    return result


def start_upstreams(fleet: Fleet, args: argparse.Namespace) -> dict[str, str]:
    urls = {}
    for track in ("stable", "canary", "shadow"):
        port = free_port()
        urls[track] = f"http://127.0.0.1:{port}"
        if args.upstream == "predictor":
            cmd = [
                "modeldeploy-predictor",
                "serve",
                "--bundle",
                args.bundle,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--track",
                track,
            ]
            cmd[0] = str(Path(sys.executable).with_name(cmd[0]))
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
        fleet.start(f"upstream-{track}", cmd, ready)
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


def start_routers(fleet: Fleet, up: dict[str, str]) -> dict[str, str]:
    setups = {
        "router w0": ["--backend", f"canary={up['canary']}", "--weight", "0"],
        "router w50": ["--backend", f"canary={up['canary']}", "--weight", "50"],
        "router mirror": ["--shadow", up["shadow"], "--mirror-percent", "100"],
    }
    bases = {}
    for name, extra in setups.items():
        port = free_port()
        bases[name] = f"http://127.0.0.1:{port}"
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
        fleet.start(name.replace(" ", "-"), cmd, f"{bases[name]}/healthz")
    return bases


def start_nginx(fleet: Fleet, up: dict[str, str], workdir: Path) -> dict[str, str]:
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
    fleet.start("nginx", cmd, base["W0"] + "/v2/health/live")
    return {"nginx w0": base["W0"], "nginx w50": base["W50"], "nginx mirror": base["MIRROR"]}


def report(results: dict[str, Result]) -> dict[str, float]:
    direct, w0 = results["direct"], results["router w0"]
    ngx = results["nginx w0"]
    router_added = w0.p50_ms - direct.p50_ms
    nginx_added = ngx.p50_ms - direct.p50_ms
    ratios = {
        "router w0 throughput / direct": w0.rps / direct.rps,
        "router w50 throughput / direct": results["router w50"].rps / direct.rps,
        "router mirror throughput / direct": results["router mirror"].rps / direct.rps,
        "nginx w0 throughput / direct": ngx.rps / direct.rps,
        "router added p50 ms": router_added,
        "nginx added p50 ms": nginx_added,
        "router added p50 / nginx added p50": router_added / nginx_added
        if nginx_added > 0
        else float("inf"),
        "router mirror p50 / router w0 p50": results["router mirror"].p50_ms / w0.p50_ms,
        "nginx mirror p50 / nginx w0 p50": results["nginx mirror"].p50_ms / ngx.p50_ms,
    }
    targets = {
        "router w0 throughput / direct": (">=", 0.85),
        "router added p50 / nginx added p50": ("<=", 2.0),
        "router mirror p50 / router w0 p50": ("<=", 1.10),
    }
    print("\nratios")
    for key, value in ratios.items():
        target = targets.get(key)
        verdict = ""
        if target:
            ok = value >= target[1] if target[0] == ">=" else value <= target[1]
            verdict = f"  (target {target[0]} {target[1]}: {'met' if ok else 'MISSED'})"
        print(f"  {key:<38} {value:7.3f}{verdict}")
    return ratios


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=int, default=10, help="seconds per target")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--upstream",
        choices=["test", "predictor"],
        default="test",
        help="test: tests/router/upstream_app.py; predictor: modeldeploy-predictor",
    )
    p.add_argument("--bundle", type=Path, help="bundle for --upstream predictor (default: iris)")
    p.add_argument(
        "--predictor-bin",
        default=str(Path(sys.executable).with_name("modeldeploy-predictor")),
        help="the modeldeploy-predictor executable",
    )
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            p.error(f"{tool} not found: apt-get install wrk nginx-light")
    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp:
        fleet = Fleet(Path(tmp))
        try:
            if args.upstream == "predictor" and args.bundle is None:
                args.bundle = make_bundle(args.predictor_bin, Path(tmp))
            up = start_upstreams(fleet, args)
            targets = {"direct": up["stable"], **start_routers(fleet, up)}
            targets.update(start_nginx(fleet, up, Path(tmp)))
            print(
                f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
                f"POST {PATH} (4 rows), upstream: {args.upstream}"
            )
            results = {name: wrk(name, base, args) for name, base in targets.items()}
        finally:
            fleet.stop()
    ratios = report(results)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"results": [asdict(r) for r in results.values()], "ratios": ratios}, indent=2
            )
        )


if __name__ == "__main__":
    main()
