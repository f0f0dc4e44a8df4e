"""A mixed-type scikit-learn Pipeline (strings, numbers, a boolean, missing values) rolled
out on the local cluster with real Prometheus: (a) through shadow and canary to promotion,
(b) rolled back on feature-drift when the traffic's categorical distribution shifts (one
city dominates) while the candidate is judged. Traffic goes through the router's Service."""

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
import pandas as pd
import pytest
from cluster_helpers import GROUP, VERSION, Env, apply_crd, wait_for

# A whole rollout on a shared, loaded machine: more than the suite default per test.
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

CITIES = ["paris", "lyon", "nice", "lille", "nantes"]
PLANS = ["basic", "pro"]


def table(n: int, rng: np.random.Generator, city_p: list[float] | None = None) -> Any:
    frame = pd.DataFrame(
        {
            "spend": rng.gamma(2.0, 40.0, n),
            "visits": rng.integers(0, 30, n).astype(float),
            "city": rng.choice(CITIES, n, p=city_p),
            "plan": rng.choice(PLANS, n).astype(object),
            "member": rng.random(n) < 0.5,
        }
    )
    frame.loc[rng.random(n) < 0.1, "plan"] = np.nan  # gaps in a string column
    return frame


def pipeline(c: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["spend", "visits"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
            ("bool", "passthrough", ["member"]),
        ]
    )
    return Pipeline([("prep", prep), ("model", LogisticRegression(C=c))])


TRAIN = table(1500, np.random.default_rng(3))
LABELS = np.where((TRAIN.spend > 80) ^ (TRAIN.city == "nice"), "churn", "stay")


def make_bundle(tmp: Path, version: str, c: float) -> str:
    """Fitted on a DataFrame, bundled by the CLI from a CSV (kinds inferred by pandas)."""
    model = tmp / f"model-{version}.joblib"
    joblib.dump(pipeline(c).fit(TRAIN, LABELS), model)
    reference = tmp / "reference.csv"
    TRAIN.to_csv(reference, index=False)
    out = tmp / f"bundle-{version}"
    exe = str(Path(sys.executable).with_name("modeldeploy-predictor"))
    subprocess.run(
        [exe, "bundle", "--model", str(model), "--reference", str(reference),
         "--name", "churn", "--version", version, "--out", str(out)],
        check=True, capture_output=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    return str(out)


def manifest(version: str, uri: str, strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud"},  # the name the cluster helpers watch
        "spec": {
            "model": {"name": "churn", "version": version, "uri": uri},
            "predictor": {
                "image": "ghcr.io/modeldeploy/predictor:test",
                "replicas": 1,
                "env": [{"name": "MODELDEPLOY_DRIFT_INTERVAL", "value": "1"}],
            },
            "strategy": {"progressDeadline": "2m", **strategy},
        },
    }


def analysis(*metrics: dict[str, Any]) -> dict[str, Any]:
    return {"interval": "6s", "minRequests": 10, "inconclusiveLimit": 5, "metrics": list(metrics)}


class Load:
    """Mixed-type /predict records through the router; ``shift()`` makes one city dominate."""

    def __init__(self, url: str, rate: float = 25.0) -> None:
        self.url, self.period = url, 1.0 / rate
        self.versions: Counter[str] = Counter()
        self.codes: Counter[int] = Counter()
        self.city_p: list[float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def shift(self) -> None:
        self.city_p = [0.02, 0.02, 0.92, 0.02, 0.02]

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
                rows = table(2, rng, self.city_p)
                records = [
                    {
                        k: (None if v != v else v.item() if hasattr(v, "item") else v)
                        for k, v in r.items()
                    }
                    for r in rows.astype(object).to_dict("records")
                ]
                try:
                    r = http.post("/predict", json=records)
                except httpx.HTTPError:
                    self.codes[-1] += 1
                    continue
                self.codes[r.status_code] += 1
                if r.status_code == 200:
                    self.versions[r.json().get("version", "")] += 1


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    apply_crd(cluster.api_client())
    e = Env(cluster, namespace, cluster.prometheus_url)
    e.start_operator()
    yield e
    e.operator.close()


def _serve_v1(env: Env, tmp_path: Path, strategy: dict[str, Any]) -> None:
    env.apply(manifest("1.0.0", make_bundle(tmp_path, "1.0.0", 1.0), strategy))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving", timeout=120)


def _router(env: Env):
    from kubernetes import client

    def ready() -> int:
        slices = client.DiscoveryV1Api(env.api).list_namespaced_endpoint_slice(
            env.namespace, label_selector="kubernetes.io/service-name=fraud"
        )
        return sum(
            1
            for s in slices.items
            for e in s.endpoints or []
            if e.conditions and e.conditions.ready
        )

    wait_for(ready, timeout=60, message="router endpoints ready")
    return env.cluster.forward("fraud", env.namespace, 8080)


def test_a_mixed_type_pipeline_goes_through_shadow_and_canary(env, tmp_path):
    strategy = {
        "type": "Shadow",
        "shadow": {"duration": "12s", "minRequests": 20},
        "canary": {"steps": [{"weight": 50, "pause": "12s"}]},
        "analysis": analysis(
            {"name": "error-rate", "max": 0.01},
            {"name": "shadow-agreement", "min": 0.8},
            {"name": "feature-drift", "max": 0.5},
        ),
    }
    _serve_v1(env, tmp_path, strategy)
    v2 = make_bundle(tmp_path, "2.0.0", 0.5)
    with _router(env) as url, Load(url) as load:
        env.apply(manifest("2.0.0", v2, strategy))
        phases = set()

        def promoted(st: dict[str, Any]) -> bool:
            phases.add(st.get("phase"))
            return st.get("phase") == "Succeeded" and st["stable"]["version"] == "2.0.0"

        env.wait_status(promoted, "v2 promoted", timeout=480)
    assert {"Shadow", "Canary"} <= phases, phases
    assert load.versions["2.0.0"] > 0 and set(load.codes) == {200}, load.codes


def test_b_a_dominating_category_rolls_the_candidate_back_on_feature_drift(env, tmp_path):
    strategy = {
        "type": "Canary",
        "canary": {"steps": [{"weight": 50, "pause": "20s"}, {"weight": 80, "pause": "20s"}]},
        "analysis": analysis({"name": "feature-drift", "max": 0.5}),
    }
    _serve_v1(env, tmp_path, strategy)
    v2 = make_bundle(tmp_path, "2.0.0", 0.5)
    with _router(env) as url, Load(url) as load:
        load.shift()  # from now on "nice" is 92% of the traffic (20% in training)
        env.apply(manifest("2.0.0", v2, strategy))
        st = env.wait_status(lambda s: s.get("phase") == "RolledBack", "rolled back", timeout=400)
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "AnalysisFailed" and "feature-drift" in degraded["message"]
    assert st["stable"]["version"] == "1.0.0" and set(st["traffic"]["tracks"]) == {"stable"}
    assert set(load.codes) == {200}, load.codes
