"""Operator faults: (a) operator started while 5 rollouts are mid-way, each
continues from its step, none skipped or repeated; (b) two replicas with Kopf
peering, the leader SIGKILLed mid-canary: the standby takes over and the
rollout continues from where it was.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from cluster_helpers import Env, apply_crd, manifest, wait_for
from test_peering_cluster import paused, priority, replicas  # noqa: F401 - a fixture

pytestmark = [pytest.mark.cluster, pytest.mark.chaos]

STEPS = [{"weight": 20, "pause": "6s"}, {"weight": 60, "pause": "6s"}]
NAMES = [f"md-{i}" for i in range(5)]


def body(name: str, version: str) -> dict[str, Any]:
    m = manifest(version, STEPS)
    m["metadata"]["name"] = name
    return m


def status_of(env: Env, name: str) -> dict[str, Any]:
    obj = env.custom.get_namespaced_custom_object(
        "modeldeploy.io", "v1alpha1", env.namespace, "modeldeployments", name
    )
    return obj.get("status") or {}


def walks(env: Env, names: list[str], until) -> dict[str, list[tuple[str, int]]]:
    """(phase, step) sequences of each object, polled until `until(statuses)`."""
    seen: dict[str, list[tuple[str, int]]] = {n: [] for n in names}

    def poll() -> bool:
        statuses = {n: status_of(env, n) for n in names}
        for n, st in statuses.items():
            here = (st.get("phase", ""), int(st.get("currentStep") or 0))
            if not seen[n] or seen[n][-1] != here:
                seen[n].append(here)
        return until(statuses)

    wait_for(poll, 180, interval=0.2, message="rollouts to reach the expected state")
    return seen


def test_a_operator_started_while_five_rollouts_are_mid_way(cluster, namespace, figures):
    apply_crd(cluster.api_client())
    env = Env(cluster, namespace, cluster.prometheus_url)
    env.start_operator()
    try:
        for n in NAMES:
            env.custom.create_namespaced_custom_object(
                "modeldeploy.io", "v1alpha1", namespace, "modeldeployments", body(n, "1.0.0")
            )
        walks(env, NAMES, lambda s: all(st.get("phase") == "Succeeded" for st in s.values()))
        for n in NAMES:
            env.custom.patch_namespaced_custom_object(
                "modeldeploy.io", "v1alpha1", namespace, "modeldeployments", n,
                {"spec": body(n, "2.0.0")["spec"]},
            )  # fmt: skip
        before = walks(env, NAMES, lambda s: all(st.get("phase") == "Canary" for st in s.values()))
        env.operator.stop(signal.SIGKILL)
        at_kill = {n: int(status_of(env, n).get("currentStep") or 0) for n in NAMES}
        env.operator.close()
        started = time.monotonic()
        env.start_operator()

        def promoted(statuses: dict[str, dict[str, Any]]) -> bool:
            return all(
                st.get("phase") == "Succeeded" and st["stable"]["version"] == "2.0.0"
                for st in statuses.values()
            )

        after = walks(env, NAMES, promoted)
        figures.update(
            rollouts=len(NAMES), restart_to_all_promoted_s=round(time.monotonic() - started, 1)
        )
    finally:
        env.operator.close()
    for n in NAMES:
        steps = [s for p, s in before[n] + after[n] if p == "Canary"]
        steps = [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s]
        assert steps == [0, 1], (n, before[n], after[n])  # none skipped or repeated
        assert at_kill[n] in (0, 1)
        history = status_of(env, n)["history"]
        assert [h["result"] for h in history] == ["Promoted", "Promoted"], history


@pytest.mark.chaos_long  # Kopf waits for the dead leader's peering lease to lapse
def test_b_peering_leader_sigkilled_mid_canary(replicas, figures):  # noqa: F811 - the fixture
    env, ops = replicas  # two replicas, not started, closed by the fixture
    for op in ops:
        op.start()
    wait_for(lambda: all(priority(op) for op in ops), 30, message="both priorities logged")
    leader, standby = sorted(ops, key=priority, reverse=True)
    wait_for(lambda: paused(standby), 30, message="standby paused")
    env.operator = leader
    slow = [{"weight": 20, "pause": "10s"}, {"weight": 60, "pause": "5s"}]
    env.apply(manifest("1.0.0", slow))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 Succeeded")
    env.apply(manifest("2.0.0", slow))
    env.wait_status(lambda s: s.get("phase") == "Canary", "v2 in canary")
    leader.stop(signal.SIGKILL)  # no goodbye: its peering entry stays until it lapses
    killed = time.monotonic()
    env.operator = standby
    wait_for(lambda: not paused(standby), 180, message="standby took over")
    took_over_s = round(time.monotonic() - killed, 1)
    seen: list[tuple[str, int]] = []

    def walked(st: dict[str, Any]) -> bool:
        here = (st.get("phase", ""), int(st.get("currentStep") or 0))
        if not seen or seen[-1] != here:
            seen.append(here)
        return st.get("phase") == "Succeeded" and st["stable"]["version"] == "2.0.0"

    st = env.wait_status(walked, "v2 promoted by the former standby", 120)
    figures.update(leader_killed_to_takeover_s=took_over_s, walk_after=seen)
    assert standby.reconciles() >= 1
    steps = [s for p, s in seen if p == "Canary"]
    assert steps in ([0, 1], [1]), seen  # from where it was; no step repeated or skipped
    assert [h["result"] for h in st["history"]] == ["Promoted", "Promoted"]
