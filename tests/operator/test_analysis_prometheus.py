"""The analysis queries against a real Prometheus scraping real predictors.

Two predictor processes on loopback (stable v1, candidate v2 failing ~20% of
requests) and Prometheus scraping both every second, each with the
`namespace` label the cluster's service discovery would add. The operator's
runner must read the candidate's error rate, latency and prediction drift
from them: this checks the PromQL and the metric names of docs/contracts.md.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import yaml
from md_factories import md
from modeldeploy_devcluster import procs
from modeldeploy_devcluster.pytest_plugin import require_tool
from modeldeploy_operator.analysis import prometheus, runner
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.status import Status
from sklearn import linear_model

pytestmark = [pytest.mark.slow]

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


class Processes:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.tmp / f"{name}.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        )
        log.close()

    def stop(self) -> None:
        for p in self.procs:
            procs.stop(p, grace=15.0)


def bundle(tmp: Path, version: str, estimator, x: np.ndarray) -> Path:
    model = tmp / f"m{version}.joblib"
    joblib.dump(estimator, model)
    ref = tmp / f"ref{version}.csv"
    np.savetxt(ref, x, delimiter=",", header="f0,f1", comments="")
    out = tmp / f"b{version}"
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    subprocess.run(
        [str(BIN / "modeldeploy-predictor"), "bundle", "--model", str(model), "--reference",
         str(ref), "--name", "fraud", "--version", version, "--out", str(out)],
        check=True, capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    return out


@pytest.fixture
def stack(tmp_path) -> Iterator[dict[str, str]]:
    from faulty_models import FailsOnShare

    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 2))
    y = (x.sum(axis=1) > 0).astype(int)
    faulty = FailsOnShare(linear_model.LogisticRegression(), threshold=0.8).fit(x, y)
    bundles = {
        "fraud-stable0001": bundle(
            tmp_path, "1.0.0", linear_model.LogisticRegression().fit(x, y), x
        ),
        "fraud-cand000002": bundle(tmp_path, "2.0.0", faulty, x),
    }
    procs = Processes(tmp_path)
    urls: dict[str, str] = {}
    targets = []
    try:
        for revision, path in bundles.items():
            port = free_port()
            env = {**os.environ, "PYTHONPATH": str(HERE), "MODELDEPLOY_REVISION": revision}
            procs.start(
                revision,
                [str(BIN / "modeldeploy-predictor"), "serve", "--bundle", str(path),
                 "--host", "127.0.0.1", "--port", str(port)],
                env,
            )  # fmt: skip
            urls[revision] = f"http://127.0.0.1:{port}"
            targets.append(f"127.0.0.1:{port}")
        prom_port = free_port()
        cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "predictors",
                    "static_configs": [{"targets": targets, "labels": {"namespace": "ns"}}],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        procs.start(
            "prometheus",
            [str(require_tool("prometheus")), f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
        )  # fmt: skip
        for url in urls.values():
            wait_http(url + "/v2/health/ready")
        urls["prometheus"] = f"http://127.0.0.1:{prom_port}"
        wait_http(urls["prometheus"] + "/-/ready")
        yield urls
    finally:
        procs.stop()


def send_traffic(urls: list[str], seconds: float) -> None:
    rng = np.random.default_rng(5)
    end = time.monotonic() + seconds
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < end:
            for url in urls:
                f0, f1 = rng.normal(size=2).tolist()
                http.post(url + "/predict", json=[{"f0": f0, "f1": f1}])
            time.sleep(0.02)


def test_runner_reads_error_rate_latency_and_drift(stack):
    send_traffic([stack["fraud-stable0001"], stack["fraud-cand000002"]], 12)
    time.sleep(2)  # one more scrape after the last request
    model = md(
        strategy={
            "type": "Canary",
            "canary": {"steps": [{"weight": 10}]},
            "analysis": {
                "interval": "10s",
                "minRequests": 20,
                "metrics": [
                    {"name": "error-rate", "max": 0.05},
                    {"name": "latency-p99", "max": 5},
                    {"name": "prediction-drift", "max": 5},
                ],
            },
        }
    )
    status = {
        "stage": "Canary",
        "stable": {"revision": "fraud-stable0001"},
        "candidate": {"revision": "fraud-cand000002"},
    }
    assert model.namespace == "ns"  # the label Prometheus adds to both predictors

    async def run():
        client = prometheus.Prometheus(stack["prometheus"])
        try:
            return await runner.run(model, Status.from_api(status), client)
        finally:
            await client.aclose()

    result = asyncio.run(run())
    by_name = {m.metric: m for m in result.measurements}
    assert result.requests is not None and result.requests >= 20, result
    err = by_name["error-rate"]
    assert err.verdict is Verdict.FAIL and 0.08 < err.value < 0.4, err
    assert by_name["latency-p99"].verdict is Verdict.PASS, by_name["latency-p99"]
    drift = by_name["prediction-drift"]
    assert drift.value is not None and drift.value >= 0, drift
