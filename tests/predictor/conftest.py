"""Fixtures for the predictor tests: fitted models, bundles, and real server processes."""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from modeldeploy_devcluster import procs
from modeldeploy_predictor.bundle import build_bundle
from sklearn.datasets import load_breast_cancer, make_regression
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

HERE = Path(__file__).parent
CLI = Path(sys.executable).with_name("modeldeploy-predictor")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    import re

    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
            found = True
    if not found:
        raise KeyError(f"{name} {labels} not in metrics")
    return total


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def run_server(
    bundle: str | Path, *args: str, env: dict[str, str] | None = None, tmp: Path
) -> Iterator[Server]:
    """``modeldeploy-predictor serve`` in its own process group; ready when /v2/health/ready is."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    full_env = {**os.environ, "PYTHONPATH": str(HERE), **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(CLI),
                "serve",
                "--bundle",
                str(bundle),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.output()}")
            try:
                return httpx.get(server.url + "/v2/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, what="predictor readiness")
        yield server
    finally:
        procs.stop(proc, grace=15.0)


@pytest.fixture(scope="session")
def cancer():
    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]
    return data.data, data.target, names


@pytest.fixture(scope="session")
def classifier(cancer):
    x, y, _ = cancer
    return GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0).fit(x, y)


def _bundle(factory, estimator, data, name: str, version: str) -> Path:
    x, _, names = data
    return build_bundle(
        estimator, x, name, version, factory.mktemp("b") / name, feature_names=names
    )


@pytest.fixture(scope="session")
def classifier_bundle(tmp_path_factory, classifier, cancer) -> Path:
    return _bundle(tmp_path_factory, classifier, cancer, "cancer", "1.0.0")


@pytest.fixture(scope="session")
def regression_data():
    x, y = make_regression(n_samples=400, n_features=50, noise=0.1, random_state=0)
    return x, y, [f"f{i}" for i in range(50)]


@pytest.fixture(scope="session")
def regressor(regression_data):
    x, y, _ = regression_data
    return GradientBoostingRegressor(n_estimators=20, random_state=0).fit(x, y)


@pytest.fixture(scope="session")
def regressor_bundle(tmp_path_factory, regressor, regression_data) -> Path:
    return _bundle(tmp_path_factory, regressor, regression_data, "reg", "2.0.0")


@pytest.fixture(scope="session")
def cancer_server(tmp_path_factory, classifier_bundle) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server")
    with run_server(
        classifier_bundle,
        "--max-body-bytes",
        "200000",
        "--prediction-log",
        str(tmp / "predictions.jsonl"),
        env={"MODELDEPLOY_TRACK": "canary", "MODELDEPLOY_REVISION": "cancer-abc"},
        tmp=tmp,
    ) as server:
        yield server


@pytest.fixture(scope="session")
def cli() -> Path:
    return CLI


@pytest.fixture
def serve(tmp_path):
    """Factory: ``with serve(bundle, *flags, env=...) as server:`` starts a real server."""

    def factory(bundle, *args: str, env: dict[str, str] | None = None):
        return run_server(bundle, *args, env=env, tmp=tmp_path)

    return factory


@contextlib.contextmanager
def http_server(handler_factory) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 (free port) for the store tests; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_factory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ----- moto (S3, STS, IAM) on loopback -------------------------------------------
@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """Start `moto_server` on 127.0.0.1 at a free port; yields its URL."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    with open(log_dir / f"moto-{port}.log", "wb") as out:
        proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/moto-api/", timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 60, what="moto server")
        yield url
    finally:
        procs.stop(proc)


def isolate_aws(monkeypatch, tmp_path: Path) -> None:
    """No credentials from the machine, and never a call to an instance metadata address."""
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def helpers():
    """Plain helpers for tests (no package imports between test modules)."""

    class _Helpers:
        free_port = staticmethod(free_port)
        metric = staticmethod(metric)
        wait_for = staticmethod(wait_for)
        stop = staticmethod(procs.stop)
        moto_server = staticmethod(moto_server)
        http_server = staticmethod(http_server)
        isolate_aws = staticmethod(isolate_aws)

    return _Helpers


# ----- a mixed-type model: strings, numbers, booleans, missing values, string classes -----

MIXED_NUMERIC = ["age", "income", "tenure", "balance", "score"]
MIXED_CATEGORICAL = ["city", "plan", "channel"]


def mixed_frame(n: int = 600, seed: int = 0):
    """A churn-like table: 5 numeric (income with gaps), 3 string (channel with gaps), 1 bool."""
    import numpy as np
    import pandas as pd

    r = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": r.integers(18, 80, n),
            "income": r.normal(50, 15, n),
            "tenure": r.integers(0, 120, n).astype(float),
            "balance": r.exponential(1000, n),
            "score": r.normal(0, 1, n),
            "city": r.choice(["paris", "lyon", "nice", "lille"], n),
            "plan": r.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2]),
            "channel": r.choice(["web", "shop", "phone"], n).astype(object),
            "member": r.random(n) < 0.4,
        }
    )
    df.loc[r.random(n) < 0.1, "income"] = np.nan
    df.loc[r.random(n) < 0.1, "channel"] = np.nan
    y = np.where(df.score + (df.plan == "pro") + 0.5 * df.member > 0.7, "churn", "stay")
    return df, y


def mixed_pipeline(handle_unknown: str = "ignore", final=None):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), MIXED_NUMERIC),
            ("cat", OneHotEncoder(handle_unknown=handle_unknown), MIXED_CATEGORICAL),
            ("bool", "passthrough", ["member"]),
        ]
    )
    final = final or HistGradientBoostingClassifier(max_iter=30, random_state=0)
    return Pipeline([("prep", prep), ("model", final)])


def json_records(frame) -> list[dict]:
    """Rows as JSON objects: missing values as null, NumPy scalars as plain Python."""
    return [
        {
            k: (None if v is None or v != v else v.item() if hasattr(v, "item") else v)
            for k, v in r.items()
        }
        for r in frame.astype(object).to_dict("records")
    ]


@pytest.fixture(scope="session")
def mixed():
    df, y = mixed_frame()
    return df.iloc[:450].reset_index(drop=True), y[:450], df.iloc[450:].reset_index(drop=True)


@pytest.fixture(scope="session")
def mixed_model(mixed):
    train, y, _ = mixed
    return mixed_pipeline().fit(train, y)


@pytest.fixture(scope="session")
def mixed_bundle(tmp_path_factory, mixed, mixed_model) -> Path:
    train, _, _ = mixed
    return build_bundle(mixed_model, train, "churn", "1.0.0", tmp_path_factory.mktemp("m") / "c")


@pytest.fixture(scope="session")
def mixed_server(tmp_path_factory, mixed_bundle) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("mixed-server")
    with run_server(mixed_bundle, "--drift-interval", "0.2", tmp=tmp) as server:
        yield server


@pytest.fixture(scope="session")
def tabular():
    """The mixed-type helpers for tests (no imports between test modules)."""

    class _Tabular:
        frame = staticmethod(mixed_frame)
        pipeline = staticmethod(mixed_pipeline)
        records = staticmethod(json_records)

    return _Tabular
