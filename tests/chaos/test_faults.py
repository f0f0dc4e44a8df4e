"""Short chaos cases, part of every `make test` (a few minutes together).

(a) kube-apiserver killed and restarted mid-canary of a drifted candidate:
the rollback lands within interval + scrape + 2 s of the API being back (a
transient API error used to park the rollout for Kopf's 60 s back-off);
(b) the operator killed right after a promotion / rollback was written,
with its Events not posted yet: exactly one Promoted / RolledBack Event
after the restart; (c) Prometheus killed mid-canary: inconclusive only, no
promotion while it is away, promoted once it is back.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_helpers import Env, apply_crd, manifest, wait_for
from dataplane import X, Y, analysis, fitted, load_rows, make_bundle, operator_env, router, serve_v1
from dataplane import manifest as dataplane_manifest
from faults import events_refused
from users import RATE, failed, failure_window, last_answer_of, served

from demo.load import Load

pytestmark = [pytest.mark.cluster, pytest.mark.chaos]

INTERVAL, SCRAPE = 6, 2  # analysis interval; the cluster's scrape interval (2s)
OUTAGE = 5.0  # seconds the faulty component stays away (the fault itself)


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    yield from operator_env(cluster, namespace)


def strategy(pause: str, *metrics: dict[str, Any], **more: Any) -> dict[str, Any]:
    a = {**analysis(*metrics), "interval": f"{INTERVAL}s", **more}
    return {"type": "Canary", "canary": {"steps": [{"weight": 25, "pause": pause}]}, "analysis": a}


def since(load: Load) -> float:
    return round(time.monotonic() - load.t0, 2)


def more_answers(load: Load, n: int = 50) -> None:
    seen = len(load.snapshot())
    wait_for(lambda: len(load.snapshot()) > seen + n, 30, message=f"{n} more answers")


def test_a_kube_apiserver_restart_mid_canary_keeps_the_rollback_bound(env, tmp_path, figures):
    drift = {"name": "feature-drift", "max": 0.5}
    plan = strategy("5m", drift, failureLimit=2, inconclusiveLimit=10)
    serve_v1(env, tmp_path, plan)
    shifted = X + 4.0
    v2 = make_bundle(tmp_path, "2.0.0", fitted(shifted, Y), shifted)
    with router(env) as url, Load(url, load_rows(), rate=RATE) as load:
        env.apply(dataplane_manifest("2.0.0", v2, plan))
        env.wait_status(
            lambda s: (s.get("analysis") or {}).get("failures") == 1, "v2's first failed run", 150
        )
        down_at = since(load)
        env.cluster.stop_component("kube-apiserver")
        time.sleep(OUTAGE)  # the fault: no API server for this long
        env.cluster.start_component("kube-apiserver")
        back_at = since(load)
        # The bound is interval + scrape + 2 s; a parked rollout (Kopf's 60 s
        # back-off) misses this deadline by far.
        bound = INTERVAL + SCRAPE + 2
        st = env.wait_status(
            lambda s: s.get("phase") == "RolledBack", "rolled back after the API returned", 30
        )
        rolled_at = since(load)
        more_answers(load)
    answers = load.snapshot()
    last_v2 = last_answer_of(answers, "2.0.0") or 0.0
    figures.update(
        rate=RATE,
        requests=len(answers),
        failed=failed(answers),
        api_down_s=round(back_at - down_at, 1),
        api_back_to_rolled_back_s=round(rolled_at - back_at, 1),
        api_back_to_last_v2_answer_s=round(last_v2 - back_at, 1),
        v2_answers_after_api_back=served(answers, "2.0.0", after=back_at),
        bound_s=bound,
    )
    assert st["analysis"]["failures"] == 2 and st["degraded"]["reason"] == "AnalysisFailed"
    assert "will try again in 60 seconds" not in env.operator.output()
    assert failed(answers) == 0, failure_window(answers)


@pytest.mark.parametrize("transition", ["Promoted", "RolledBack"])
def test_b_operator_killed_with_its_transition_event_unposted_posts_it_once(
    cluster, namespace, transition, figures
):
    apply_crd(cluster.api_client())
    env = Env(cluster, namespace, cluster.prometheus_url)
    operator = env.start_operator()
    try:
        pause = "1s" if transition == "Promoted" else "10m"
        steps = [{"weight": 50, "pause": pause}]
        env.apply(manifest("1.0.0", steps))
        env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 Succeeded")
        with events_refused(env.api, namespace):
            env.apply(manifest("2.0.0", steps))
            if transition == "RolledBack":
                env.wait_status(lambda s: s.get("phase") == "Canary", "v2 in canary")
                assert env.plugin("abort", "fraud").returncode == 0
            done = {"Promoted": "Succeeded", "RolledBack": "RolledBack"}[transition]
            st = env.wait_status(
                lambda s: s.get("phase") == done and s.get("observedGeneration") == 2, f"v2 {done}"
            )
            operator.stop(signal.SIGKILL)  # dies with the Event still in its outbox
        pending = [e["reason"] for e in st.get("pendingEvents") or []]
        assert transition in pending, pending
        assert transition not in env.events()
        env.start_operator()
        after = env.wait_status(lambda s: not s.get("pendingEvents"), "outbox posted")
        reasons = env.events()
        figures.update(unposted_at_kill=len(pending), posted_after_restart=len(reasons))
        assert reasons.count(transition) == 1, reasons
        assert after["phase"] == done
    finally:
        operator.close()
        if env.operator is not operator:
            env.operator.close()


def test_c_prometheus_killed_mid_canary_is_inconclusive_only(env, tmp_path, figures):
    errors = {"name": "error-rate", "max": 0.05}
    plan = strategy("12s", errors, inconclusiveLimit=20)
    serve_v1(env, tmp_path, plan)
    v2 = make_bundle(tmp_path, "2.0.0", fitted(X, Y, C=0.5), X)
    with router(env) as url, Load(url, load_rows(), rate=RATE) as load:
        env.apply(dataplane_manifest("2.0.0", v2, plan))
        env.wait_status(lambda s: s.get("phase") == "Canary", "v2 in canary", 150)
        # Away before the step's first run and for longer than the step's pause:
        # time alone must not promote.
        with env.cluster.component_down("prometheus"):
            env.wait_status(
                lambda s: (s.get("analysis") or {}).get("inconclusive", 0) >= 2,
                "two inconclusive runs while Prometheus is away",
                4 * INTERVAL,
            )
            st = env.status()
            assert st["phase"] == "Canary" and st["analysis"]["failures"] == 0, st["analysis"]
            assert st["analysis"].get("passes", 0) == 0
        back_at = since(load)
        st = env.wait_status(
            lambda s: s.get("phase") == "Succeeded", "v2 promoted after Prometheus returned", 90
        )
        promoted_at = since(load)
    answers = load.snapshot()
    events = env.events()
    figures.update(
        rate=RATE,
        requests=len(answers),
        failed=failed(answers),
        prometheus_back_to_promoted_s=round(promoted_at - back_at, 1),
    )
    assert st["stable"]["version"] == "2.0.0" and st["analysis"]["failures"] == 0
    assert "AnalysisFailed" not in events and "RolledBack" not in events
    # The inconclusive runs of the outage are one aggregated Event.
    assert events.count("AnalysisInconclusive") == 1, events
    assert failed(answers) == 0, failure_window(answers)
