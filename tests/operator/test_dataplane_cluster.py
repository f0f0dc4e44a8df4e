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

import re
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_helpers import Env, wait_for
from dataplane import (
    CANARY,
    Load,
    X,
    Y,
    analysis,
    fitted,
    make_bundle,
    manifest,
    operator_env,
    rolled_back,
    router,
    serve_v1,
)
from sklearn import linear_model

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    yield from operator_env(cluster, namespace)


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
