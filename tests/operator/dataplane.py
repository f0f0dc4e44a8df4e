"""Data-plane helpers for rollout tests on the local cluster: bundles made by the
predictor's own CLI, ModelDeployment manifests, a load generator through the
router, and waits on the outcome. Shared by test_dataplane_cluster.py,
test_gates_cluster.py and tests/chaos.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
from cluster_helpers import GROUP, VERSION, Env, apply_crd, wait_for
from kubernetes import client
from sklearn import linear_model

HERE = Path(__file__).resolve().parent
FEATURES = ["f0", "f1"]
RNG = np.random.default_rng(7)
X = RNG.normal(size=(2000, 2))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)


# Two steps with pauses long enough for a scrape and an analysis tick each.
CANARY = {
    "type": "Canary",
    "canary": {"steps": [{"weight": 20, "pause": "12s"}, {"weight": 50, "pause": "12s"}]},
}


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


def serve_v1(env: Env, tmp_path: Path, strategy: dict[str, Any]) -> None:
    env.apply(manifest("1.0.0", make_bundle(tmp_path, "1.0.0", fitted(X, Y), X), strategy))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving", timeout=120)


def router(env: Env):
    wait_for(
        lambda: ready_endpoints(env, "fraud") > 0, timeout=60, message="router endpoints ready"
    )
    return env.cluster.forward("fraud", env.namespace, 8080)


def ready_endpoints(env: Env, service: str) -> int:
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


def operator_env(cluster: Any, namespace: str) -> Iterator[Env]:
    """The body of the `env` fixtures of the data-plane tests: CRD, operator running."""
    apply_crd(cluster.api_client())
    e = Env(cluster, namespace, cluster.prometheus_url)
    e.start_operator()
    yield e
    e.operator.close()


def load_rows(n: int = 500) -> list[dict[str, float]]:
    """Rows for demo.load.Load: the training distribution (no drift)."""
    return [dict(zip(FEATURES, r, strict=True)) for r in X[:n].tolist()]


def failing_v2(tmp: Path) -> str:
    """A v2 bundle that answers 5xx for a share of requests (faulty_models.FailsOnShare)."""
    from faulty_models import FailsOnShare

    faulty = FailsOnShare(linear_model.LogisticRegression(), threshold=0.8).fit(X, Y)
    return make_bundle(tmp, "2.0.0", faulty, X)
