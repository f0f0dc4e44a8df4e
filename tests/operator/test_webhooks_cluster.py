"""Webhooks and notifications end to end: the operator process, the real API
server and real HTTP receivers started by the test on 127.0.0.1.

Revisions have 0 replicas (Ready at once, no data plane, see
test_operator_cluster.py): what is under test is when the operator calls the
receivers and what their answers do to the rollout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cluster_helpers import manifest, wait_for
from hook_receiver import Receiver
from test_dataplane_cluster import env

pytestmark = pytest.mark.cluster
__all__ = ["env"]  # the fixture: CRD applied, operator started
STEPS = [{"weight": 10, "pause": "1s"}, {"weight": 50, "pause": "1s"}]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def with_gates(version: str, receiver: Receiver, hooks: list[tuple[str, str]]) -> dict[str, Any]:
    body = manifest(
        version,
        STEPS,
        webhooks=[
            {"name": path, "type": type_, "url": receiver.url(path), "timeout": "2s"}
            for type_, path in hooks
        ],
    )
    body["spec"]["notifications"] = [
        {"name": "chat", "type": "slack", "url": receiver.url("slack")},
        {"name": "ops", "url": receiver.url("generic")},
    ]
    return body


def test_failing_pre_rollout_hook_rolls_back_before_any_traffic(env, receiver):
    hooks = [("pre-rollout", "smoke"), ("event", "events"), ("post-rollout", "after")]
    env.apply(with_gates("1.0.0", receiver, hooks))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving")
    receiver.answer("smoke", 500)
    weights: set[int] = set()

    def rolled_back(st: dict[str, Any]) -> bool:
        weights.add(int(st.get("canaryWeight", 0)))
        return st.get("phase") == "RolledBack"

    env.apply(with_gates("2.0.0", receiver, hooks))
    st = env.wait_status(rolled_back, "v2 rolled back by its pre-rollout hook")
    assert weights == {0}, "the candidate got traffic before its pre-rollout hook passed"
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "PreRolloutFailed", degraded
    assert "pre-rollout webhook smoke answered 500" in degraded["message"]
    (call,) = receiver.got("smoke")  # failureLimit 1: called once, then rolled back
    assert call["name"] == "fraud" and call["namespace"] == env.namespace
    assert call["checksum"] == st["candidate"]["revision"]
    assert call["candidate"]["version"] == "2.0.0" and call["stable"]["version"] == "1.0.0"
    # Queued deliveries arrive after the transition, without holding it.
    wait_for(lambda: receiver.got("after"), timeout=30, message="post-rollout call")
    assert receiver.got("after")[0]["phase"] == "RolledBack"

    def reasons(path: str) -> list[str]:
        return [b["metadata"]["eventReason"] for b in receiver.got(path)]

    wait_for(
        lambda: {"RolloutStarted", "RolledBack"} <= set(reasons("events")),
        timeout=30,
        message="event webhook calls for the start and the rollback",
    )
    wait_for(
        lambda: any("RolledBack" in b["text"] for b in receiver.got("slack")),
        timeout=30,
        message="Slack message for the rollback",
    )
    generic = [b["reason"] for b in receiver.got("generic")]
    assert "RolloutStarted" in generic
    assert "RolledBack" in env.events()


def test_confirm_promotion_gates_promotion_until_2xx(env, receiver):
    hooks = [("confirm-promotion", "gate")]
    env.apply(with_gates("1.0.0", receiver, hooks))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving")
    receiver.answer("gate", 403)
    env.apply(with_gates("2.0.0", receiver, hooks))

    def waiting(st: dict[str, Any]) -> bool:
        return bool((st.get("gates") or {}).get("confirmPromotion"))

    st = env.wait_status(waiting, "promotion waiting for the gate")
    assert st["phase"] == "Canary" and st["canaryWeight"] == 50
    # Asked again and again, refused each time: the rollout stays at the last step.
    wait_for(lambda: len(receiver.got("gate")) >= 3, timeout=30, message="gate asked 3 times")
    st = env.status()
    assert st["phase"] == "Canary" and st["stable"]["version"] == "1.0.0"
    progressing = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "AwaitingConfirmation"
    assert "answered 403" in progressing["message"]
    shown = env.plugin("status", "fraud")
    assert shown.returncode == 0, shown.stderr
    assert "Promotion:  waiting" in shown.stdout and "answered 403" in shown.stdout
    receiver.answer("gate", 200)
    st = env.wait_status(
        lambda s: s.get("phase") == "Succeeded" and s["stable"]["version"] == "2.0.0",
        "v2 promoted once the gate answered 2xx",
    )
    assert "AwaitingConfirmation" in env.events()
