"""Every analysis gate proven end to end: real predictor and router pods, real
Prometheus, steady load through the router.

(a) a Full rollout rolled back during its bake (error-rate); (b) a slow
candidate rolled back on latency-p99; (c) a candidate whose outputs shift
against stable's while its inputs do not, rolled back on prediction-drift;
(d) a custom PromQL metric deciding a rollback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from cluster_helpers import Env, wait_for
from dataplane import (
    Load,
    X,
    Y,
    analysis,
    failing_v2,
    fitted,
    load_rows,
    make_bundle,
    manifest,
    operator_env,
    rolled_back,
    router,
    serve_v1,
)
from sklearn import linear_model

from demo.load import Load as ConcurrentLoad

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CANARY = {"type": "Canary", "canary": {"steps": [{"weight": 30, "pause": "60s"}]}}


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    yield from operator_env(cluster, namespace)


def settled_on_v1(load: Load) -> None:
    """Users get v1 only once the rollback has moved traffic."""
    seen = sum(load.codes.values())
    wait_for(lambda: sum(load.codes.values()) > seen + 30, timeout=30, message="more load")
    assert load.recent and set(load.recent[-20:]) == {"1.0.0"}, load.recent[-20:]


def test_a_full_rollout_is_rolled_back_during_its_bake(env, tmp_path):
    strategy = {
        "type": "Full",
        "bakeDuration": "5m",
        "analysis": analysis({"name": "error-rate", "max": 0.05}),
    }
    serve_v1(env, tmp_path, strategy)
    v2 = failing_v2(tmp_path)
    with router(env) as url, Load(url) as load:
        env.apply(manifest("2.0.0", v2, strategy))
        baking = env.wait_status(
            lambda s: s.get("stage") == "Bake", "v2 switched and baking", timeout=150
        )
        assert baking["canaryWeight"] == 100 and baking["phase"] == "Progressing"
        st = rolled_back(env, "error-rate")
        settled_on_v1(load)
    assert st["history"][-1]["result"] == "RolledBack"
    assert load.versions["2.0.0"] > 0  # v2 did serve users during the bake


def test_b_a_slow_candidate_is_rolled_back_on_latency_p99(env, tmp_path):
    from faulty_models import SlowAfterGrace

    strategy = {**CANARY, "analysis": analysis({"name": "latency-p99", "max": 0.25})}
    serve_v1(env, tmp_path, strategy)
    slow = SlowAfterGrace(linear_model.LogisticRegression(), delay=0.4).fit(X, Y)
    v2 = make_bundle(tmp_path, "2.0.0", slow, X)
    # Concurrent users (demo.load): a sequential client would wait on every slow
    # answer and send the candidate too few requests to judge (inconclusive).
    with router(env) as url, ConcurrentLoad(url, load_rows(), rate=25) as load:
        env.apply(manifest("2.0.0", v2, strategy))
        st = rolled_back(env, "latency-p99")
        rolled_at = time.monotonic() - load.t0
        wait_for(
            lambda: any(t > rolled_at + 3 for t, _, _ in load.snapshot()), 30, message="more load"
        )
    late = [v for t, code, v in load.snapshot() if t > rolled_at + 3 and code == 200]
    assert late and set(late) == {"1.0.0"}, late[-20:]
    failed = [m for m in st["analysis"]["measurements"] if m["verdict"] == "Fail"]
    assert failed and all(m["value"] > 0.25 for m in failed), failed


def test_c_shifted_outputs_on_unchanged_inputs_are_rolled_back_on_prediction_drift(env, tmp_path):
    # Same inputs and reference as v1 (no feature drift by construction); the
    # decision boundary moved, so v2 answers class 1 far more often than v1.
    biased = (X[:, 0] + X[:, 1] > -1.5).astype(int)
    strategy = {**CANARY, "analysis": analysis({"name": "prediction-drift", "max": 0.2})}
    serve_v1(env, tmp_path, strategy)
    v2 = make_bundle(tmp_path, "2.0.0", fitted(X, biased), X)
    with router(env) as url, Load(url):
        env.apply(manifest("2.0.0", v2, strategy))
        st = rolled_back(env, "prediction-drift")
    failed = [m for m in st["analysis"]["measurements"] if m["verdict"] == "Fail"]
    assert failed and all(m["value"] > 0.2 for m in failed), failed


def test_d_a_custom_promql_metric_decides_the_rollback(env, tmp_path):
    sel = 'namespace="{namespace}",revision="{revision}",endpoint!~".*(health|metrics|ready).*"'
    query = (
        f'(sum(increase(modeldeploy_requests_total{{{sel},code=~"5.."}}[{{interval}}]))'
        f" or vector(0)) / sum(increase(modeldeploy_requests_total{{{sel}}}[{{interval}}]))"
    )
    # Only the custom metric judges: no builtin one is listed.
    custom = {"name": "my-5xx-share", "query": query, "max": 0.05}
    strategy = {**CANARY, "analysis": analysis(custom)}
    serve_v1(env, tmp_path, strategy)
    v2 = failing_v2(tmp_path)
    with router(env) as url, Load(url) as load:
        env.apply(manifest("2.0.0", v2, strategy))
        st = rolled_back(env, "my-5xx-share")
        settled_on_v1(load)
    assert {m["metric"] for m in st["analysis"]["measurements"]} == {"my-5xx-share"}
