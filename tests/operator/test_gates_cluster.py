"""Release gates on the local cluster with real predictor and router pods.

Validation: a v2 that disagrees with stable on the validation set is rolled
back (ValidationFailed) before the router sends it a single request; a good
v2 passes validation and goes through its steps.

Dry run: a v2 trained on shifted data fails a dry-run feature-drift bound at
every run, and is promoted all the same, with the failures in status, Events
and the operator's metrics.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cluster_helpers import Env, wait_for
from test_dataplane_cluster import (
    CANARY,
    Load,
    X,
    Y,
    analysis,
    env,
    fitted,
    make_bundle,
    manifest,
    router,
    serve_v1,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
__all__ = ["env"]  # the fixture, imported for the tests below


def test_dry_run_metric_is_shown_but_never_rolls_back(env: Env, tmp_path):
    strategy = {
        **CANARY,
        "analysis": analysis(
            {"name": "error-rate", "max": 0.05},
            {"name": "feature-drift", "max": 0.5, "dryRun": True},
        ),
    }
    serve_v1(env, tmp_path, strategy)
    shifted = X + 4.0
    v2 = make_bundle(tmp_path, "2.0.0", fitted(shifted, Y), shifted)
    with router(env) as url, Load(url):
        env.apply(manifest("2.0.0", v2, strategy))

        def promoted(st: dict[str, Any]) -> bool:
            return st.get("phase") == "Succeeded" and st["stable"]["version"] == "2.0.0"

        st = env.wait_status(promoted, "v2 promoted despite the dry-run drift", timeout=180)
    assert st["analysis"]["failures"] == 0
    assert not any(h.get("result") == "RolledBack" for h in st.get("history", []))
    assert "DryRunMetricFailed" in env.events()
    metrics = env.operator.metrics()
    assert (
        'modeldeploy_operator_measurements_total{dry_run="true",metric="feature-drift",verdict="Fail"}'
        in metrics
    )


def validated_bundle(tmp: Path, version: str, estimator: Any) -> str:
    """A bundle whose validation set is 200 labelled rows (the predictor's CLI)."""
    plain = Path(make_bundle(tmp, version, estimator, X))
    holdout = tmp / f"holdout-{version}.csv"
    rows = np.column_stack([X[:200], Y[:200]])
    np.savetxt(holdout, rows, delimiter=",", header="f0,f1,y", comments="")
    out = tmp / f"validated-{version}"
    exe = str(Path(sys.executable).with_name("modeldeploy-predictor"))
    model = tmp / f"model-{version}.joblib"  # written by make_bundle
    reference = tmp / f"reference-{version}.csv"
    subprocess.run(
        [exe, "bundle", "--model", str(model), "--reference", str(reference),
         "--name", "fraud", "--version", version, "--out", str(out),
         "--validation", str(holdout), "--label-column", "y"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert plain.is_dir()
    return str(out)


def router_requests(env: Env, track: str) -> float:
    query = f'sum(modeldeploy_router_requests_total{{namespace="{env.namespace}",track="{track}"}})'
    r = httpx.get(f"{env.prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
    result = r.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def test_validation_stops_a_bad_model_before_any_user_request(env: Env, tmp_path):
    strategy = {
        **CANARY,
        "analysis": analysis({"name": "error-rate", "max": 0.05}),
        "validation": {"minAgreement": 0.9, "maxAccuracyDrop": 0.1, "maxLatencyRatio": 50},
    }
    env.apply(manifest("1.0.0", validated_bundle(tmp_path, "1.0.0", fitted(X, Y)), strategy))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving", timeout=120)
    flipped = validated_bundle(tmp_path, "2.0.0", fitted(X, 1 - Y))  # wrong on every label
    with router(env) as url, Load(url) as load:
        env.apply(manifest("2.0.0", flipped, strategy))
        st = env.wait_status(lambda s: s.get("phase") == "RolledBack", "rolled back", timeout=150)
        # Prometheus has scraped the router since: its stable count moved on.
        seen = router_requests(env, "stable")
        wait_for(lambda: router_requests(env, "stable") > seen, timeout=60, message="a scrape")
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ValidationFailed", degraded
    assert "agreement 0 below the minimum 0.9" in degraded["message"]
    assert re.search(r"accuracyDrop 0\.9\d* above the maximum 0\.1", degraded["message"])
    assert st["validation"]["state"] == "Failed"
    assert st["validation"]["metrics"]["stableAccuracy"] > 0.9
    assert st["validation"]["metrics"]["candidateP99"] > 0
    # No user request reached the candidate: not through the router, not answered by v2.
    assert router_requests(env, "canary") == 0 and router_requests(env, "shadow") == 0
    assert load.versions["2.0.0"] == 0 and load.versions["1.0.0"] > 0
    assert "ValidationFailed" in env.plugin("status", "fraud").stdout
    metrics = env.operator.metrics()
    assert 'modeldeploy_operator_validations_total{result="failed"} 1.0' in metrics


def test_validation_passes_a_good_model_into_its_steps(env: Env, tmp_path):
    strategy = {
        **CANARY,
        "analysis": analysis({"name": "error-rate", "max": 0.05}),
        "validation": {"minAgreement": 0.8, "maxAccuracyDrop": 0.05},
    }
    env.apply(manifest("1.0.0", validated_bundle(tmp_path, "1.0.0", fitted(X, Y)), strategy))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving", timeout=120)
    v2 = validated_bundle(tmp_path, "2.0.0", fitted(X, Y, C=0.5))
    with router(env) as url, Load(url):
        env.apply(manifest("2.0.0", v2, strategy))
        st = env.wait_status(
            lambda s: s.get("phase") == "Succeeded" and s["stable"]["version"] == "2.0.0",
            "v2 validated and promoted",
            timeout=180,
        )
    assert st["validation"]["state"] == "Passed"
    assert st["validation"]["metrics"]["agreement"] >= 0.8
