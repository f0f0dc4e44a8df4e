"""Predictor benchmark: this predictor vs MLServer 1.7.1 vs a minimal FastAPI app, side by side.

Same estimator file for every server, same single-row V2 request, same load
generator (``wrk``, one thread, N connections = concurrency), servers run one at
a time on loopback. All-numeric models are also measured with binary FP64 /
FP32 tensors (tritonclient's default) and, with ``--compare-ref``, against the
predictor of an older commit (the fast path before/after, in the same run); the
mixed-type pipeline is fed one input per column, as MLServer's pandas codec
sends it, to both servers. Also measures the in-process ``predict`` ceiling at
the same batch sizes. Prints throughput, p50, p99 and the ratios the issues set
targets for. Usage::

    python -m benchmarks predictor [--quick] [--models classifier,regressor,mixed]
        [--duration S] [--concurrency 1,8,32,64] [--compare-ref 15f35bd]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from modeldeploy_devcluster import procs as process_groups

from ..router.fleet import cpu_seconds
from . import mlserver_env, payloads
from .models import ALL, Model, batch_of, make_models

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# The body is read from a file: binary tensors cannot sit in a Lua string literal.
LUA = """
local f = assert(io.open("%s", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
%s
done = function(summary, latency, requests)
  io.write(string.format(
    'BENCH_RESULT {"requests": %%d, "duration_us": %%d, "status_errors": %%d, ' ..
    '"socket_errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: float = 0.0  # server CPU time per request: the figure least moved by other load
    rows_per_call: float | None = None  # the predictor's batches (its batch_size histogram)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----- servers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    pid: int  # its CPU time (and its children's: MLServer's workers) is read from /proc


@contextlib.contextmanager
def started(
    cmd: list[str], port: int, log: Path, cwd: Path, env: dict | None = None
) -> Iterator[Server]:
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{cmd[0]} exited {proc.returncode}; see {log}:\n{log.read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cmd[0]} not ready in 120 s; see {log}")
            time.sleep(0.2)
        yield Server(url, proc.pid)
    finally:
        process_groups.stop(proc, grace=20.0)


def predictor_server(model: Model, workdir: Path, *flags: str):
    port = free_port()
    cmd = [
        str(VENV_BIN / "modeldeploy-predictor"),
        "serve",
        "--bundle",
        str(model.bundle),
        "--port",
        str(port),
        *flags,
    ]
    return started(cmd, port, workdir / f"predictor-{model.name}-{port}.log", REPO)


# The CLI of an older checkout, run with its sources first on the path.
OLD_CLI = "import sys; from modeldeploy_predictor.cli import main; sys.exit(main())"


def checkout_predictor(ref: str, workdir: Path) -> Path:
    """``predictor/src`` of commit ``ref`` (git archive), for the before/after comparison."""
    dest = workdir / f"ref-{ref}"
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "predictor/src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "predictor" / "src"


def old_predictor_server(model: Model, workdir: Path, src: Path):
    """The predictor of an older commit, on a bundle made by that commit's own CLI."""
    env = {"PYTHONPATH": str(src)}
    reference = workdir / f"{model.name}-reference.csv"
    header = ",".join(model.names)
    np.savetxt(reference, model.x, delimiter=",", header=header, comments="", fmt="%.17g")
    bundle = workdir / f"bundle-{model.name}-{src.parent.parent.name}"
    subprocess.run(
        [sys.executable, "-c", OLD_CLI, "bundle", "--model", str(model.joblib_path),
         "--reference", str(reference), "--name", model.name, "--version", "1",
         "--out", str(bundle)],
        check=True, env={**os.environ, **env}, capture_output=True,
    )  # fmt: skip
    port = free_port()
    cmd = [sys.executable, "-c", OLD_CLI, "serve", "--bundle", str(bundle), "--port", str(port)]
    log = workdir / f"predictor-{model.name}-{src.parent.parent.name}.log"
    return started(cmd, port, log, workdir, env)


def baseline_server(model: Model, workdir: Path):
    port = free_port()
    cmd = [
        str(VENV_BIN / "uvicorn"), "benchmarks.predictor.baseline_app:app", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return started(
        cmd,
        port,
        workdir / f"baseline-{model.name}.log",
        REPO,
        {"BENCH_MODEL": str(model.joblib_path)},
    )


def mlserver_server(model: Model, workdir: Path, batching: bool):
    exe = mlserver_env.ensure()
    folder = workdir / f"mlserver-{model.name}-{'batching' if batching else 'default'}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shutil.copy(model.joblib_path, folder / "model.joblib")
    port = free_port()
    settings = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": model.name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    if batching:  # the same limits as the predictor's defaults
        model_settings.update({"max_batch_size": 64, "max_batch_time": 0.005})
    (folder / "model-settings.json").write_text(json.dumps(model_settings))
    return started([str(exe), "start", str(folder)], port, folder / "server.log", folder)


@dataclass
class Target:
    """One server process and the request forms measured on it (one table row each)."""

    label: str
    start: Callable[[], contextlib.AbstractContextManager[Server]]
    forms: tuple[str, ...]


def targets(model: Model, workdir: Path, quick: bool, skip_ml: bool, old: Path | None) -> list:
    """What runs against ``model``: the predictor first, then its peers."""
    if model.mixed:  # one input per column, as MLServer's pandas codec sends it, to all
        ours = Target("predictor", lambda: predictor_server(model, workdir), ("columns",))
        out = [ours]
        if not quick:
            out.append(
                Target(
                    "predictor-nobatch",
                    lambda: predictor_server(model, workdir, "--no-batching"),
                    ("columns",),
                )
            )
        peer_form = ("columns",)
    else:
        forms = ("json", "binary-fp64", "binary-fp32")
        out = [Target("predictor", lambda: predictor_server(model, workdir), forms)]
        if old is not None:
            out.append(
                Target(
                    f"predictor@{old.parent.parent.name[4:]}",
                    lambda: old_predictor_server(model, workdir, old),
                    ("json",),
                )
            )
        if not quick:
            out.append(
                Target(
                    "predictor-nobatch",
                    lambda: predictor_server(model, workdir, "--no-batching"),
                    ("json",),
                )
            )
        out.append(Target("fastapi-baseline", lambda: baseline_server(model, workdir), ("json",)))
        peer_form = ("json",)
    if not skip_ml:
        out.append(Target("mlserver", lambda: mlserver_server(model, workdir, False), peer_form))
        out.append(
            Target("mlserver-batching", lambda: mlserver_server(model, workdir, True), peer_form)
        )
    return out


# ----- measurement -----------------------------------------------------------------


def check_answer(url: str, model: Model, payload: payloads.Payload) -> None:
    """Every server must give the estimator's own answer for the benchmark row."""
    r = httpx.post(
        f"{url}/v2/models/{model.name}/infer", content=payload.body, headers=payload.headers
    )
    if r.status_code != 200:
        raise AssertionError(f"{url} answered {r.status_code} to {payload.form}: {r.text[:500]}")
    got = r.json()["outputs"][0]["data"][0]
    want = model.estimator.predict(payload.row)[0]
    if not np.isclose(float(got), float(want), rtol=1e-9):
        raise AssertionError(f"{url} answered {got} to {payload.form}, the estimator says {want}")


def lua_script(workdir: Path, model: Model, payload: payloads.Payload) -> Path:
    body = workdir / f"{model.name}-{payload.form}.body"
    body.write_bytes(payload.body)
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in payload.headers.items())
    lua = workdir / f"{model.name}-{payload.form}.lua"
    lua.write_text(LUA % (body, headers))
    return lua


def run_wrk(url: str, model: Model, lua: Path, concurrency: int, seconds: float) -> Result:
    cmd = [
        "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(lua), f"{url}/v2/models/{model.name}/infer",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT "))
    doc = json.loads(line.split(" ", 1)[1])
    return Result(
        rps=doc["requests"] / (doc["duration_us"] / 1e6),
        p50_ms=doc["p50_us"] / 1000,
        p99_ms=doc["p99_us"] / 1000,
        requests=doc["requests"],
        errors=doc["status_errors"] + doc["socket_errors"],
    )


def ceiling(
    model: Model, batch_sizes: list[int], seconds: float = 1.0
) -> dict[int, tuple[float, float]]:
    """In-process predict: (calls/s, rows/s) at each batch size."""
    out = {}
    for b in batch_sizes:
        x = batch_of(model, b)
        model.estimator.predict(x)
        calls, started_at = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started_at) < seconds:
            model.estimator.predict(x)
            calls += 1
        out[b] = (calls / elapsed, calls * b / elapsed)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks predictor", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="classifier and mixed, concurrency 1 and 32, 3 s runs, no --no-batching rows",
    )
    parser.add_argument("--models", help=f"comma-separated from {','.join(ALL)} (default: all)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 6, quick 3)")
    parser.add_argument("--concurrency", help="comma-separated (default 1,8,32,64)")
    parser.add_argument(
        "--skip-mlserver", action="store_true", help="do not install or run MLServer"
    )
    parser.add_argument(
        "--compare-ref",
        metavar="COMMIT",
        help="also serve the all-numeric models with the predictor of this commit",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds, medians reported (default 1)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    # Stop the servers (own sessions) on SIGTERM / SIGINT too, even when run in the background.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    quick = args.quick
    levels = [int(c) for c in (args.concurrency or ("1,32" if quick else "1,8,32,64")).split(",")]
    seconds = args.duration or (3.0 if quick else 6.0)
    default_models = "classifier,mixed" if quick else ",".join(ALL)
    which = (args.models or default_models).split(",")
    print(f"[bench] load average before: {os.getloadavg()}, cpus: {os.cpu_count()}", flush=True)
    if not args.skip_mlserver:
        mlserver_env.ensure()
    results: dict = {
        "config": {"concurrency": levels, "seconds": seconds, "loadavg_before": os.getloadavg()}
    }
    with tempfile.TemporaryDirectory(prefix="modeldeploy-bench-") as tmp:
        workdir = Path(tmp)
        old = checkout_predictor(args.compare_ref, workdir) if args.compare_ref else None
        for model in make_models(workdir, which):
            chosen = targets(model, workdir, quick, args.skip_mlserver, old)
            results[model.name] = run_model(model, workdir, levels, seconds, chosen, args.rounds)
    results["config"]["loadavg_after"] = os.getloadavg()
    print(f"[bench] load average after: {results['config']['loadavg_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=lambda o: o.__dict__))
    return 0


def run_model(
    model: Model,
    workdir: Path,
    levels: list[int],
    seconds: float,
    chosen: list[Target],
    rounds: int = 1,
) -> dict:
    """Every server up at once, measured in interleaved rounds (medians reported), the
    order rotated each round, so that changes in the machine's load hit every server alike."""
    samples: dict[str, dict[int, list[Result]]] = {}
    with contextlib.ExitStack() as stack:
        cells = []
        for target in chosen:
            server = stack.enter_context(target.start())
            for form in target.forms:
                payload = payloads.build(model, form)
                label = target.label if form in ("json", "columns") else f"{target.label} {form}"
                check_answer(server.url, model, payload)
                lua = lua_script(workdir, model, payload)
                run_wrk(server.url, model, lua, max(levels), min(2.0, seconds))  # warm-up
                cells.append((label, server, lua))
                samples[label] = {c: [] for c in levels}
        for round_no in range(1, rounds + 1):
            shift = (round_no - 1) % len(cells)  # each round starts with another server
            for label, server, lua in cells[shift:] + cells[:shift]:
                for c in levels:
                    res = measure(server, model, lua, c, seconds)
                    samples[label][c].append(res)
                    print(
                        f"[bench] {model.name:6} r{round_no} {label:26} c={c:<3} "
                        f"{res.rps:9.0f} req/s  p50 {res.p50_ms:7.2f} ms  "
                        f"p99 {res.p99_ms:7.2f} ms  CPU {res.cpu_us:6.0f} us/req  "
                        f"errors {res.errors}"
                        + (f"  rows/predict {res.rows_per_call:.1f}" if res.rows_per_call else ""),
                        flush=True,
                    )
    table = {label: {c: median(runs) for c, runs in row.items()} for label, row in samples.items()}
    ceil = ceiling(model, levels)
    report(model, table, ceil, levels)
    return {"servers": table, "ceiling": ceil}


def median(runs: list[Result]) -> Result:
    """Per-figure medians of the rounds; requests and errors summed."""
    calls = [r.rows_per_call for r in runs]
    return Result(
        rps=float(np.median([r.rps for r in runs])),
        p50_ms=float(np.median([r.p50_ms for r in runs])),
        p99_ms=float(np.median([r.p99_ms for r in runs])),
        requests=sum(r.requests for r in runs),
        errors=sum(r.errors for r in runs),
        cpu_us=float(np.median([r.cpu_us for r in runs])),
        rows_per_call=None if None in calls else float(np.median(calls)),
    )


def batch_totals(url: str) -> tuple[float, float] | None:
    """(rows, predict calls) so far, from the predictor's metrics; None for other servers."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    totals = {}
    for line in text.splitlines():
        for suffix in ("_sum", "_count"):
            if line.startswith(f"modeldeploy_batch_size{suffix}"):
                totals[suffix] = totals.get(suffix, 0.0) + float(line.rsplit(" ", 1)[1])
    return (totals["_sum"], totals["_count"]) if len(totals) == 2 else None


def measure(server: Server, model: Model, lua: Path, concurrency: int, seconds: float) -> Result:
    """One wrk run, with the server's CPU per request and the predictor's rows per predict."""
    before = batch_totals(server.url)
    cpu = cpu_seconds(server.pid)
    res = run_wrk(server.url, model, lua, concurrency, seconds)
    res.cpu_us = (cpu_seconds(server.pid) - cpu) / max(1, res.requests) * 1e6
    after = batch_totals(server.url) if before else None
    if before and after and after[1] > before[1]:
        res.rows_per_call = (after[0] - before[0]) / (after[1] - before[1])
    return res


def report(
    model: Model, table: dict[str, dict[int, Result]], ceil: dict, levels: list[int]
) -> None:
    kind = "one input per column (pandas codec)" if model.mixed else "FP64 tensor"
    print(
        f"\n== {model.name} ({type(model.estimator).__name__}, {len(model.names)} features), "
        f"single-row V2 requests, {kind}"
    )
    header = "server".ljust(28) + "".join(
        f"| c={c:<3} req/s   p50 ms   p99 ms CPU us/req " for c in levels
    )
    print(header)
    for label, row in table.items():
        print(
            label.ljust(28)
            + "".join(
                f"| {row[c].rps:10.0f} {row[c].p50_ms:8.2f} {row[c].p99_ms:8.2f} "
                f"{row[c].cpu_us:10.0f} "
                for c in levels
            )
        )
    print(
        "in-process ceiling".ljust(28)
        + "".join(f"| {ceil[c][1]:10.0f} rows/s (batch {c})   " for c in levels)
    )
    for label, row in table.items():  # one DataFrame / matrix per batch, not per request
        if all(row[c].rows_per_call for c in levels):
            means = ", ".join(f"c={c} {row[c].rows_per_call:.1f}" for c in levels)
            print(f"rows per predict call, {label}: {means}")
    ours = table["predictor"]
    print("ratios (predictor / peer):")
    peers = [p for p in table if p != "predictor"]
    for c in levels:
        parts = [
            f"vs {peer}: throughput x{ours[c].rps / table[peer][c].rps:.2f}, "
            f"p50 x{ours[c].p50_ms / table[peer][c].p50_ms:.2f}, "
            f"p99 x{ours[c].p99_ms / table[peer][c].p99_ms:.2f}, "
            f"CPU/req x{ours[c].cpu_us / table[peer][c].cpu_us:.2f}"
            for peer in peers
        ]
        print(f"  c={c}:\n    " + "\n    ".join(parts))
    for text, ok in goals(model, table, levels):
        print(f"  target {text}: {'met' if ok else 'NOT met'}")
    print(flush=True)


def goals(model: Model, table: dict, levels: list[int]) -> list[tuple[str, bool]]:
    """The issues' targets: issue 17 for the mixed model, the earlier ones for the others."""
    ours, out = table["predictor"], []
    if 32 in levels and "mlserver" in table:
        default, batching = table["mlserver"][32], table["mlserver-batching"][32]
        if model.mixed:
            out.append(("c=32 throughput >= 3x MLServer default", ours[32].rps >= 3 * default.rps))
            out.append(("c=32 p99 below MLServer default", ours[32].p99_ms < default.p99_ms))
        else:
            out.append(("c=32 throughput >= 2x MLServer default", ours[32].rps >= 2 * default.rps))
            out.append(
                ("c=32 throughput >= 1.2x MLServer batching", ours[32].rps >= 1.2 * batching.rps)
            )
            out.append(
                (
                    "c=32 p99 no worse than MLServer (both)",
                    ours[32].p99_ms <= min(default.p99_ms, batching.p99_ms),
                )
            )
    if 1 in levels and "fastapi-baseline" in table:
        out.append(
            (
                "c=1 p50 within 1.5x FastAPI baseline",
                ours[1].p50_ms <= 1.5 * table["fastapi-baseline"][1].p50_ms,
            )
        )
    for label in table:
        if "@" in label:  # the fast path before/after: no regression beyond noise
            for c in levels:
                out.append(
                    (
                        f"c={c} throughput vs {label} (>= 0.9x)",
                        ours[c].rps >= 0.9 * table[label][c].rps,
                    )
                )
    return out


if __name__ == "__main__":
    sys.exit(main())
