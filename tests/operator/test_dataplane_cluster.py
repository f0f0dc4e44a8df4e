"""Rollouts judged on real traffic: predictor and router pods, real Prometheus.

(a) a good v2 goes through every canary step and is promoted; (b) a v2 that
fails a share of requests is rolled back on error rate; (c) a v2 trained on
shifted data is rolled back on feature drift; (d) a shadow v2 that disagrees
with stable is rolled back on agreement and never answers a client; (h) a
v2 whose predictor cannot start is rolled back as crash-looping once a pod
has restarted `crashLoopRestarts` times. Traffic comes from a load generator
through the router's Service.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cluster_helpers import GROUP, VERSION, Env, apply_crd, wait_for

pytest.importorskip("modeldeploy_predictor.bundle", reason="needs the predictor")
pytest.importorskip("modeldeploy_router.kube", reason="needs the router")
joblib = pytest.importorskip("joblib")
linear_model = pytest.importorskip("sklearn.linear_model")

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
FEATURES = ["f0", "f1"]
RNG = np.random.default_rng(7)
X = RNG.normal(size=(2000, 2))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)


def make_bundle(tmp: Path, version: str, estimator: Any, x: np.ndarray) -> str:
    """A bundle directory made by the predictor's own CLI."""
    model = tmp / f"model-{version}.joblib"
    joblib.dump(estimator, model)
    reference = tmp / f"reference-{version}.csv"
    np.savetxt(reference, x, delimiter=",", header=",".join(FEATURES), comments="")
    out = tmp / f"bundle-{version}"
    exe = str(Path(sys.executable).with_name("modeldeploy-predictor"))
    env = {**os.environ, "PYTHONPATH": str(HERE)}  # joblib imports faulty_models
    subprocess.run(
        [exe, "bundle", "--model", str(model), "--reference", str(reference),
         "--name", "fraud", "--version", version, "--out", str(out)],
        check=True, capture_output=True, timeout=120, env=env,
    )  # fmt: skip
    return str(out)


def fitted(x: np.ndarray, y: np.ndarray, **kw: Any) -> Any:
    return linear_model.LogisticRegression(**kw).fit(x, y)


def manifest(version: str, uri: str, strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud"},
        "spec": {
            "model": {"name": "fraud", "version": version, "uri": uri},
            "predictor": {
                "image": "ghcr.io/modeldeploy/predictor:test",
                "replicas": 1,
                "env": [
                    {"name": "PYTHONPATH", "value": str(HERE)},  # faulty_models for joblib
                    {"name": "MODELDEPLOY_DRIFT_INTERVAL", "value": "1"},
                ],
            },
            "strategy": {"progressDeadline": "2m", **strategy},
        },
    }


def analysis(*metrics: dict[str, Any]) -> dict[str, Any]:
    return {"interval": "6s", "minRequests": 10, "inconclusiveLimit": 5, "metrics": list(metrics)}


class Load:
    """Single-row /predict requests through the router, in a thread."""

    def __init__(self, url: str, rate: float = 25.0) -> None:
        self.url, self.period = url, 1.0 / rate
        self.versions: Counter[str] = Counter()
        self.codes: Counter[int] = Counter()
        self.recent: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        rng = np.random.default_rng(11)
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self._stop.wait(self.period):
                row = dict(zip(FEATURES, rng.normal(size=2).tolist(), strict=True))
                try:
                    r = http.post("/predict", json=[row])
                except httpx.HTTPError:
                    self.codes[-1] += 1
                    continue
                self.codes[r.status_code] += 1
                if r.status_code == 200:
                    version = r.json().get("version", "")
                    self.versions[version] += 1
                    self.recent = [*self.recent[-49:], version]


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    apply_crd(cluster.api_client())
    e = Env(cluster, namespace, cluster.prometheus_url)
    e.start_operator()
    yield e
    e.operator.close()


def serve_v1(env: Env, tmp_path: Path, strategy: dict[str, Any]) -> None:
    env.apply(manifest("1.0.0", make_bundle(tmp_path, "1.0.0", fitted(X, Y), X), strategy))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving", timeout=120)


def router(env: Env):
    wait_for(
        lambda: _ready_endpoints(env, "fraud") > 0, timeout=60, message="router endpoints ready"
    )
    return env.cluster.forward("fraud", env.namespace, 8080)


def _ready_endpoints(env: Env, service: str) -> int:
    from kubernetes import client

    slices = client.DiscoveryV1Api(env.api).list_namespaced_endpoint_slice(
        env.namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return sum(
        1 for s in slices.items for e in s.endpoints or [] if e.conditions and e.conditions.ready
    )


def rolled_back(env: Env, metric: str) -> dict[str, Any]:
    st = env.wait_status(lambda s: s.get("phase") == "RolledBack", "rolled back", timeout=150)
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "AnalysisFailed", degraded
    assert metric in degraded["message"], degraded["message"]
    assert st["traffic"]["canaryWeight"] == 0 and set(st["traffic"]["tracks"]) == {"stable"}
    return st


CANARY = {
    "type": "Canary",
    "canary": {"steps": [{"weight": 20, "pause": "12s"}, {"weight": 50, "pause": "12s"}]},
}


def test_a_good_v2_goes_through_every_step(env, tmp_path):
    strategy = {**CANARY, "analysis": analysis({"name": "error-rate", "max": 0.01})}
    serve_v1(env, tmp_path, strategy)
    v2 = make_bundle(tmp_path, "2.0.0", fitted(X, Y, C=0.5), X)
    with router(env) as url, Load(url) as load:
        env.apply(manifest("2.0.0", v2, strategy))
        weights = set()

        def promoted(st: dict[str, Any]) -> bool:
            weights.add(st.get("canaryWeight"))
            return st.get("phase") == "Succeeded" and st["stable"]["version"] == "2.0.0"

        env.wait_status(promoted, "v2 promoted", timeout=180)
    assert {20, 50} <= weights
    assert load.versions["1.0.0"] > 0 and load.versions["2.0.0"] > 0
    assert set(load.codes) == {200}, load.codes


def test_b_v2_failing_requests_is_rolled_back_on_error_rate(env, tmp_path):
    from faulty_models import FailsOnShare

    strategy = {**CANARY, "analysis": analysis({"name": "error-rate", "max": 0.05})}
    serve_v1(env, tmp_path, strategy)
    faulty = FailsOnShare(linear_model.LogisticRegression(), threshold=0.8)
    faulty.fit(X, Y)
    v2 = make_bundle(tmp_path, "2.0.0", faulty, X)
    with router(env) as url, Load(url) as load:
        env.apply(manifest("2.0.0", v2, strategy))
        rolled_back(env, "error-rate")
        seen = sum(load.codes.values())
        wait_for(lambda: sum(load.codes.values()) > seen + 50, timeout=30, message="more load")
    assert load.recent and set(load.recent[-20:]) == {"1.0.0"}


def test_c_v2_trained_on_shifted_data_is_rolled_back_on_drift(env, tmp_path):
    strategy = {**CANARY, "analysis": analysis({"name": "feature-drift", "max": 0.5})}
    serve_v1(env, tmp_path, strategy)
    shifted = X + 4.0
    v2 = make_bundle(tmp_path, "2.0.0", fitted(shifted, Y), shifted)
    with router(env) as url, Load(url):
        env.apply(manifest("2.0.0", v2, strategy))
        rolled_back(env, "feature-drift")


def test_d_disagreeing_shadow_is_rolled_back_and_never_answers(env, tmp_path):
    strategy = {
        "type": "Shadow",
        "shadow": {"duration": "30s", "minRequests": 20},
        "analysis": analysis({"name": "shadow-agreement", "min": 0.9}),
    }
    serve_v1(env, tmp_path, strategy)
    v2 = make_bundle(tmp_path, "2.0.0", fitted(X, 1 - Y), X)  # flipped labels
    with router(env) as url, Load(url) as load:
        env.apply(manifest("2.0.0", v2, strategy))
        rolled_back(env, "shadow-agreement")
    assert load.versions["2.0.0"] == 0 and load.versions["1.0.0"] > 0


def test_h_crash_looping_candidate_is_rolled_back_at_the_restart_threshold(env, tmp_path):
    strategy = {**CANARY, "analysis": analysis({"name": "error-rate", "max": 0.05})}
    serve_v1(env, tmp_path, strategy)
    assert env.get()["spec"]["strategy"]["crashLoopRestarts"] == 3  # the CRD default
    # No bundle at the URI: the predictor exits at start, again and again.
    env.apply(manifest("2.0.0", str(tmp_path / "no-such-bundle"), strategy))
    st = env.wait_status(lambda s: s.get("phase") == "RolledBack", "rolled back", timeout=150)
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "CandidateFailing", degraded
    found = re.search(r"CrashLoopBackOff after (\d+) restarts", degraded["message"])
    assert found and int(found.group(1)) >= 3, degraded["message"]
    # The store error reaches the rollout message (terminationMessagePolicy
    # FallbackToLogsOnError: the predictor's last words).
    assert "it said: modeldeploy-predictor serve: " in degraded["message"], degraded["message"]
    assert "no-such-bundle/model.json: missing" in degraded["message"], degraded["message"]
    assert st["traffic"]["tracks"].keys() == {"stable"}
    assert st["stable"]["version"] == "1.0.0"
