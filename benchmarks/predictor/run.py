"""Predictor benchmark: this predictor vs MLServer 1.7.1 vs a minimal FastAPI app, side by side.

Same estimator file for every server, same single-row V2 request, same load
generator (``wrk``, one thread, N connections = concurrency), servers run one at
a time on loopback. Also measures the in-process ``predict`` ceiling at the same
batch sizes. Prints throughput, p50, p99 and the ratios the issue sets targets
for. Usage::

    python -m benchmarks predictor [--quick] [--duration S] [--concurrency 1,8,32,64]
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import joblib
import numpy as np
from modeldeploy_devcluster import procs as process_groups
from modeldeploy_predictor.bundle import build_bundle
from sklearn.datasets import load_breast_cancer, make_regression
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

from . import mlserver_env

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
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
class Model:
    name: str
    estimator: object
    x: np.ndarray
    names: list[str]
    joblib_path: Path
    bundle: Path


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_models(workdir: Path, which: list[str]) -> list[Model]:
    models = []
    if "classifier" in which:
        data = load_breast_cancer()
        names = [n.replace(" ", "_") for n in data.feature_names]
        est = GradientBoostingClassifier(random_state=0).fit(data.data, data.target)
        models.append(_save("cancer", est, data.data, names, workdir))
    if "regressor" in which:
        x, y = make_regression(n_samples=2000, n_features=50, noise=0.1, random_state=0)
        est = GradientBoostingRegressor(random_state=0).fit(x, y)
        models.append(_save("synth50", est, x, [f"f{i}" for i in range(50)], workdir))
    return models


def _save(name: str, est, x: np.ndarray, names: list[str], workdir: Path) -> Model:
    path = workdir / f"{name}.joblib"
    joblib.dump(est, path)
    bundle = build_bundle(est, x, name, "1", workdir / f"bundle-{name}", feature_names=names)
    return Model(name, est, x, names, path, bundle)


def request_body(model: Model) -> bytes:
    row = model.x[:1]
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [1, row.shape[1]],
                "datatype": "FP64",
                "data": row.ravel().tolist(),
            }
        ],
        "outputs": [{"name": "predict"}],
    }
    return json.dumps(body).encode()


# ----- servers ---------------------------------------------------------------------


@contextlib.contextmanager
def started(
    cmd: list[str], port: int, log: Path, cwd: Path, env: dict | None = None
) -> Iterator[str]:
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
        yield url
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


# ----- measurement -----------------------------------------------------------------


def check_answer(url: str, model: Model, body: bytes) -> None:
    """Every server must give the estimator's own answer for the benchmark row."""
    r = httpx.post(
        f"{url}/v2/models/{model.name}/infer",
        content=body,
        headers={"content-type": "application/json"},
    )
    r.raise_for_status()
    got = r.json()["outputs"][0]["data"][0]
    want = model.estimator.predict(model.x[:1])[0]
    if not np.isclose(float(got), float(want), rtol=1e-9):
        raise AssertionError(f"{url} answered {got}, the estimator says {want}")


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
        x = np.resize(model.x, (b, model.x.shape[1]))
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
        "--quick", action="store_true", help="classifier only, concurrency 1 and 32, 3 s runs"
    )
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 6, quick 3)")
    parser.add_argument("--concurrency", help="comma-separated (default 1,8,32,64)")
    parser.add_argument(
        "--skip-mlserver", action="store_true", help="do not install or run MLServer"
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
    which = ["classifier"] if quick else ["classifier", "regressor"]
    print(f"[bench] load average before: {os.getloadavg()}, cpus: {os.cpu_count()}", flush=True)
    if not args.skip_mlserver:
        mlserver_env.ensure()
    results: dict = {
        "config": {"concurrency": levels, "seconds": seconds, "loadavg_before": os.getloadavg()}
    }
    with tempfile.TemporaryDirectory(prefix="modeldeploy-bench-") as tmp:
        workdir = Path(tmp)
        for model in make_models(workdir, which):
            results[model.name] = run_model(
                model, workdir, levels, seconds, quick, args.skip_mlserver
            )
    results["config"]["loadavg_after"] = os.getloadavg()
    print(f"[bench] load average after: {results['config']['loadavg_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=lambda o: o.__dict__))
    return 0


def run_model(
    model: Model, workdir: Path, levels: list[int], seconds: float, quick: bool, skip_ml: bool
) -> dict:
    body = request_body(model)
    lua = workdir / f"{model.name}.lua"
    lua.write_text(LUA % body.decode())
    servers = {
        "predictor": lambda: predictor_server(model, workdir),
        "fastapi-baseline": lambda: baseline_server(model, workdir),
    }
    if not quick:
        servers["predictor-nobatch"] = lambda: predictor_server(model, workdir, "--no-batching")
    if not skip_ml:
        servers["mlserver"] = lambda: mlserver_server(model, workdir, batching=False)
        servers["mlserver-batching"] = lambda: mlserver_server(model, workdir, batching=True)
    table: dict[str, dict[int, Result]] = {}
    for label, factory in servers.items():
        with factory() as url:
            check_answer(url, model, body)
            run_wrk(url, model, lua, max(levels), min(2.0, seconds))  # warm-up, discarded
            table[label] = {}
            for c in levels:
                table[label][c] = res = run_wrk(url, model, lua, c, seconds)
                print(
                    f"[bench] {model.name:8} {label:18} c={c:<3} {res.rps:9.0f} req/s  "
                    f"p50 {res.p50_ms:7.2f} ms  p99 {res.p99_ms:7.2f} ms  errors {res.errors}",
                    flush=True,
                )
    ceil = ceiling(model, levels)
    report(model, table, ceil, levels)
    return {"servers": table, "ceiling": ceil}


def report(
    model: Model, table: dict[str, dict[int, Result]], ceil: dict, levels: list[int]
) -> None:
    print(
        f"\n== {model.name} ({type(model.estimator).__name__}, {model.x.shape[1]} features), "
        "single-row V2 requests"
    )
    header = "server".ljust(20) + "".join(f"| c={c:<3} req/s   p50 ms   p99 ms " for c in levels)
    print(header)
    for label, row in table.items():
        print(
            label.ljust(20)
            + "".join(
                f"| {row[c].rps:10.0f} {row[c].p50_ms:8.2f} {row[c].p99_ms:8.2f} " for c in levels
            )
        )
    print(
        "in-process ceiling  "
        + "".join(f"| {ceil[c][1]:10.0f} rows/s (batch {c})   " for c in levels)
    )
    ours = table["predictor"]
    print("ratios:")
    for c in levels:
        parts = []
        for peer in ("mlserver", "mlserver-batching", "fastapi-baseline"):
            if peer in table:
                theirs = table[peer][c]
                parts.append(
                    f"vs {peer}: throughput x{ours[c].rps / theirs.rps:.2f}, "
                    f"p50 x{ours[c].p50_ms / theirs.p50_ms:.2f}, "
                    f"p99 x{ours[c].p99_ms / theirs.p99_ms:.2f}"
                )
        print(f"  c={c}: " + "; ".join(parts))
    targets = []
    if 32 in levels and "mlserver" in table:
        targets.append(
            (
                "c=32 throughput >= 2x MLServer default",
                ours[32].rps >= 2 * table["mlserver"][32].rps,
            )
        )
        targets.append(
            (
                "c=32 throughput >= 1.2x MLServer batching",
                ours[32].rps >= 1.2 * table["mlserver-batching"][32].rps,
            )
        )
        targets.append(
            (
                "c=32 p99 no worse than MLServer (both)",
                ours[32].p99_ms
                <= min(table["mlserver"][32].p99_ms, table["mlserver-batching"][32].p99_ms),
            )
        )
    if 1 in levels:
        targets.append(
            (
                "c=1 p50 within 1.5x FastAPI baseline",
                ours[1].p50_ms <= 1.5 * table["fastapi-baseline"][1].p50_ms,
            )
        )
    for text, ok in targets:
        print(f"  target {text}: {'met' if ok else 'NOT met'}")
    print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
