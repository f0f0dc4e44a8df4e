"""Data-plane faults under load: a candidate that turns bad after it was
promoted into a later canary step (5xx, or slow), rolled back within the
analysis interval + one scrape + 2 s of the breach; a candidate predictor
pod SIGKILLed mid-request, users' failures counted.

The misbehaviour is test-only: a bundle whose model (faulty_models.
TurnsBadOnSwitch) goes bad once a switch file exists, not a product flag.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from cluster_helpers import Env, wait_for
from dataplane import X, Y, analysis, fitted, load_rows, make_bundle, operator_env, router
from dataplane import manifest as dataplane_manifest
from faults import kill_pod_processes, running_pods
from faulty_models import TurnsBadOnSwitch
from sklearn import linear_model
from users import RATE, failed, failure_window, last_answer_of, last_failure

from demo.load import Load

pytestmark = [pytest.mark.cluster, pytest.mark.chaos, pytest.mark.chaos_long]

INTERVAL, SCRAPE = 6, 2


def plan(metric: dict) -> dict:
    return {
        "type": "Canary",
        "canary": {"steps": [{"weight": 25, "pause": "8s"}, {"weight": 50, "pause": "10m"}]},
        "analysis": {**analysis(metric), "interval": f"{INTERVAL}s", "failureLimit": 1},
    }


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    yield from operator_env(cluster, namespace)


@pytest.mark.parametrize(
    ("how", "metric"),
    [
        ("5xx", {"name": "error-rate", "max": 0.05}),
        ("slow", {"name": "latency-p99", "max": 0.25}),
    ],
)
def test_a_candidate_turning_bad_at_step_2_is_rolled_back(env, tmp_path, how, metric, figures):
    strategy = plan(metric)
    v1 = fitted(X, Y)
    env.apply(dataplane_manifest("1.0.0", make_bundle(tmp_path, "1.0.0", v1, X), strategy))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving", 120)
    switch = tmp_path / "turn-bad"
    bad = TurnsBadOnSwitch(
        linear_model.LogisticRegression(), str(switch), 0.4 if how == "slow" else 0.0
    ).fit(X, Y)
    v2 = make_bundle(tmp_path, "2.0.0", bad, X)
    with router(env) as url, Load(url, load_rows(), rate=RATE) as load:
        env.apply(dataplane_manifest("2.0.0", v2, strategy))
        env.wait_status(
            lambda s: s.get("phase") == "Canary" and s.get("currentStep") == 1,
            "v2 promoted into step 2 (50%)",
            150,
        )
        switch.touch()  # the fault: v2 turns bad
        bad_at = time.monotonic() - load.t0
        st = env.wait_status(lambda s: s.get("phase") == "RolledBack", "rolled back", 60)
        rolled_at = time.monotonic() - load.t0
        seen = len(load.snapshot())
        wait_for(lambda: len(load.snapshot()) > seen + 50, 30, message="answers after it")
    answers = load.snapshot()
    # v2's last answer: a 200 when slow, a 5xx when failing.
    last_v2 = max(last_answer_of(answers, "2.0.0") or 0.0, last_failure(answers))
    bound = INTERVAL + SCRAPE + 2
    figures.update(
        how=how,
        rate=RATE,
        requests=len(answers),
        failed=failed(answers),
        failure_window_s=failure_window(answers),
        bad_to_rolled_back_s=round(rolled_at - bad_at, 1),
        bad_to_last_v2_answer_s=round(last_v2 - bad_at, 1),
        bound_s=bound,
    )
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "AnalysisFailed" and metric["name"] in degraded["message"]
    assert st["traffic"]["canaryWeight"] == 0
    # The breach begins at the switch; the first run that sees it is at most one
    # interval later, plus one scrape, plus 2 s to move the traffic.
    assert last_v2 - bad_at <= bound, figures


def test_b_candidate_pod_sigkilled_mid_request(env, tmp_path, figures):
    strategy = plan({"name": "error-rate", "max": 0.05})
    strategy["canary"]["steps"] = [{"weight": 50, "pause": "20s"}]
    v1 = make_bundle(tmp_path, "1.0.0", fitted(X, Y), X)
    env.apply(dataplane_manifest("1.0.0", v1, strategy))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving", 120)
    v2 = make_bundle(tmp_path, "2.0.0", fitted(X, Y, C=0.5), X)
    with router(env) as url, Load(url, load_rows(), rate=RATE) as load:
        env.apply(dataplane_manifest("2.0.0", v2, strategy))
        st = env.wait_status(lambda s: s.get("phase") == "Canary", "v2 in canary", 150)
        pods = running_pods(
            env.api, env.namespace, f"modeldeploy.io/revision={st['candidate']['revision']}"
        )
        killed_at = time.monotonic() - load.t0
        killed = kill_pod_processes(env.cluster, env.namespace, pods[0])
        done = env.wait_status(
            lambda s: s.get("phase") in ("Succeeded", "RolledBack"), "decided", 150
        )
    answers = load.snapshot()
    figures.update(
        rate=RATE,
        requests=len(answers),
        failed=failed(answers),
        failure_window_s=failure_window(answers),
        killed_at_s=round(killed_at, 1),
        outcome=done["phase"],
    )
    assert killed > 0
    # The router retries a refused connect on the stable track; requests in
    # flight on the killed pod can fail (counted, not asserted zero).
    assert failed(answers) <= 16, figures  # at most the in-flight bound of the load
