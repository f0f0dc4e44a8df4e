"""Prometheus answering too slowly (beyond the operator's query timeout) or
answering errors, mid-canary under load: runs are inconclusive, nothing is
promoted or rolled back while it lasts, the status says why, and the rollout
is promoted once Prometheus answers again.

The operator's --prometheus-url points at netfaults.SlowOrFailingPrometheus,
an HTTP front that forwards to the cluster's real Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_helpers import Env, OperatorProcess, apply_crd
from dataplane import X, Y, analysis, fitted, load_rows, make_bundle, router, serve_v1
from dataplane import manifest as dataplane_manifest
from netfaults import SlowOrFailingPrometheus
from users import RATE, failed, failure_window

from demo.load import Load

pytestmark = [pytest.mark.cluster, pytest.mark.chaos, pytest.mark.chaos_long]  # ~90 s each

INTERVAL = 4
QUERY_TIMEOUT = 2.0  # the operator's --prometheus-timeout; "slow" answers after 3x that
PLAN = {
    "type": "Canary",
    "canary": {"steps": [{"weight": 25, "pause": "8s"}]},
    "analysis": {
        **analysis({"name": "error-rate", "max": 0.05}),
        "interval": f"{INTERVAL}s",
        "inconclusiveLimit": 50,
    },
}
WHY = {"slow": "timed out", "errors": "503"}


@pytest.fixture
def fronted(cluster, namespace) -> Iterator[tuple[Env, SlowOrFailingPrometheus]]:
    apply_crd(cluster.api_client())
    front = SlowOrFailingPrometheus(cluster.prometheus_url, delay=3 * QUERY_TIMEOUT).start()
    env = Env(cluster, namespace, front.url)
    env.operator = OperatorProcess(
        cluster.kubeconfig, front.url, namespace, "--prometheus-timeout", str(QUERY_TIMEOUT)
    ).start()
    try:
        yield env, front
    finally:
        env.operator.close()
        front.close()


@pytest.mark.parametrize("mode", ["slow", "errors"])
def test_prometheus_slow_or_failing_mid_canary_is_inconclusive_only(
    fronted, tmp_path, mode, figures
):
    env, front = fronted
    serve_v1(env, tmp_path, PLAN)
    v2 = make_bundle(tmp_path, "2.0.0", fitted(X, Y, C=0.5), X)
    with router(env) as url, Load(url, load_rows(), rate=RATE) as load:
        front.mode = mode
        env.apply(dataplane_manifest("2.0.0", v2, PLAN))
        st = env.wait_status(
            lambda s: (s.get("analysis") or {}).get("inconclusive", 0) >= 3,
            f"three inconclusive runs while Prometheus is {mode}",
            150,
        )
        during = env.status()
        front.mode = "pass"
        done = env.wait_status(lambda s: s.get("phase") == "Succeeded", "promoted once back", 90)
    answers = load.snapshot()
    events = env.events()
    messages = [m.get("message", "") for m in st["analysis"].get("measurements") or []]
    figures.update(
        mode=mode,
        rate=RATE,
        requests=len(answers),
        failed=failed(answers),
        faulty_queries=front.queries[mode],
        message=messages[:1],
    )
    assert front.queries[mode] > 0
    for s in (st, during):  # nothing decided on time alone or on a broken Prometheus
        assert s["phase"] == "Canary" and s["analysis"]["failures"] == 0, s["analysis"]
        assert s["analysis"].get("passes", 0) == 0
    assert any(WHY[mode] in m for m in messages), messages  # the status says why
    assert done["stable"]["version"] == "2.0.0" and done["analysis"]["failures"] == 0
    assert "AnalysisFailed" not in events and "RolledBack" not in events
    assert failed(answers) == 0, failure_window(answers)
