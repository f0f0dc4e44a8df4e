"""Transition Events survive an operator restart and are posted exactly once."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from md_factories import T0, Driver, body, md
from modeldeploy_operator import announce, reconcile, spec
from modeldeploy_operator import kube as kubemod
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.rollout.decision import Event
from modeldeploy_operator.status import Status

STRATEGY = {
    "type": "Canary",
    "canary": {"steps": [{"weight": 10, "pause": "0s"}]},
    "analysis": {"interval": "1s", "metrics": []},
}


def test_events_get_sequential_deterministic_names() -> None:
    m = md()
    events = [Event("Normal", "CanaryStep", "step 1"), Event("Normal", "X", "y")]
    status = announce.queue(m, Status(event_seq=4), events, T0)
    pending = status.pending_events
    assert [p["name"] for p in pending] == ["fraud.u-1.5", "fraud.u-1.6"]
    assert status.to_api()["eventSeq"] == 6 and status.to_api()["pendingEvents"] == list(pending)
    # A later transition before the outbox was flushed appends; nothing is renamed.
    more = announce.queue(m, status, [Event("Warning", "RolledBack", "z")], T0)
    assert [p["name"] for p in more.pending_events] == ["fraud.u-1.5", "fraud.u-1.6", "fraud.u-1.7"]


def test_no_events_leave_no_outbox() -> None:
    status = announce.queue(md(), Status(), [], T0)
    assert status.pending_events == () and "pendingEvents" not in status.to_api()


def test_inconclusive_runs_of_one_streak_share_one_counted_event() -> None:
    d = Driver(
        {
            "type": "Canary",
            "canary": {"steps": [{"weight": 10, "pause": "10m"}]},
            "analysis": {"interval": "30s", "inconclusiveLimit": 5},
        }
    )
    d.deploy_stable()
    d.change("2.0.0")
    d.tick(1, candidate_ready=True, stable_ready=True)
    d.tick(1, candidate_ready=True, stable_ready=True)
    assert d.stage == "Canary"
    names = []
    for runs in (1, 2, 3):
        decision = d.analyse(Verdict.INCONCLUSIVE)
        pending = announce.queue(d.md, decision.status, decision.events, d.now).pending_events
        assert len(pending) == 1 and pending[0]["count"] == runs
        names.append(pending[0]["name"])
    assert len(set(names)) == 1
    # A pass ends the streak: the next inconclusive run starts a new Event.
    d.analyse(Verdict.PASS)
    decision = d.analyse(Verdict.INCONCLUSIVE)
    pending = announce.queue(d.md, decision.status, decision.events, d.now).pending_events
    assert pending[-1]["name"] != names[0] and pending[-1]["count"] == 1


class Killed(BaseException):
    """The operator process dying at this instant (not an error it could handle)."""


class FakeKube:
    """The API server as far as one reconcile needs it; Events unique by name."""

    def __init__(self) -> None:
        self.body = body("1.0.0", strategy=STRATEGY)
        self.body["metadata"]["resourceVersion"] = "1"
        self.events: dict[str, dict[str, Any]] = {}
        self.die_on: str | None = None  # "post" or "clear"

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        ready = {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2}
        return {
            "metadata": {"name": name, "generation": 1},
            "spec": {"replicas": 2},
            "status": ready,
        }

    async def list_pods(self, namespace: str, revision: str) -> list[dict[str, Any]]:
        return []

    async def list_deployments(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return []

    async def apply(self, obj: dict[str, Any]) -> None:
        return None

    async def list_hpas(self, namespace: str, selector: str) -> list[str]:
        return []  # no autoscaling in this object

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> str:
        if self.die_on == "clear" and patch == {"pendingEvents": None}:
            raise Killed
        status = self.body.setdefault("status", {})
        for key, value in patch.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = copy.deepcopy(value)  # top-level replace is enough here
        version = str(int(self.body["metadata"]["resourceVersion"]) + 1)
        self.body["metadata"]["resourceVersion"] = version
        return version

    # The real wrapper (409 handling included) over a fake CoreV1Api.
    post_event = kubemod.Kube.post_event

    @property
    def core(self) -> FakeKube:
        return self

    def create_namespaced_event(self, namespace: str, event: dict[str, Any]) -> None:
        if self.die_on == "post":
            raise Killed
        name = event["metadata"]["name"]
        if name in self.events:
            raise ApiException(status=409, reason="AlreadyExists")
        self.events[name] = event

    def patch_namespaced_event(self, name: str, namespace: str, patch: dict[str, Any]) -> None:
        self.events[name].update(patch)

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events.values()]


def new_operator(kube: FakeKube, now: dt.datetime) -> reconcile.Reconciler:
    return reconcile.Reconciler(kube=kube, provider=None, clock=lambda: now)  # type: ignore[arg-type]


def run_until_promoted(kube: FakeKube) -> None:
    now = T0
    operator = new_operator(kube, now)
    for _ in range(3):  # v1: Initial -> Done
        asyncio.run(operator.reconcile(copy.deepcopy(kube.body)))
    kube.body["spec"]["model"]["version"] = "2.0.0"
    kube.body["metadata"]["generation"] = 2
    for _ in range(6):
        now += dt.timedelta(seconds=1)
        operator.clock = lambda now=now: now
        asyncio.run(operator.reconcile(copy.deepcopy(kube.body)))
        if kube.body["status"].get("stage") == "Done" and kube.die_on is None:
            return
    raise AssertionError(kube.body["status"])


@pytest.mark.parametrize("die_on", ["post", "clear"])
def test_operator_killed_around_the_promotion_posts_each_event_exactly_once(die_on: str) -> None:
    kube = FakeKube()
    run_until_promoted(kube)
    assert kube.reasons().count("Promoted") == 1  # v1's first revision: Available
    # The next rollout's promotion: killed right after its status write.
    kube.body["spec"]["model"]["version"] = "3.0.0"
    kube.body["metadata"]["generation"] = 3
    operator = new_operator(kube, T0 + dt.timedelta(minutes=1))
    kube.die_on = None
    asyncio.run(operator.reconcile(copy.deepcopy(kube.body)))  # RolloutStarted
    asyncio.run(operator.reconcile(copy.deepcopy(kube.body)))  # CanaryStep
    kube.die_on = die_on
    with pytest.raises(Killed):
        asyncio.run(operator.reconcile(copy.deepcopy(kube.body)))  # Promoted written, then killed
    status = kube.body["status"]
    assert status["stage"] == "Done" and status["stable"]["version"] == "3.0.0"
    assert [p["reason"] for p in status["pendingEvents"]] == ["Promoted"]
    # A new process: its first (resume) reconcile posts what the dead one did not.
    kube.die_on = None
    restarted = new_operator(kube, T0 + dt.timedelta(minutes=2))
    asyncio.run(restarted.reconcile(copy.deepcopy(kube.body)))
    assert kube.reasons().count("Promoted") == 2  # v2's and v3's, each once
    assert "pendingEvents" not in kube.body["status"]
    assert not reconcile.needs_ticks(kube.body)


def test_a_settled_object_with_unposted_events_keeps_ticking() -> None:
    b = {"metadata": {"generation": 1}, "status": {"stage": "Done", "observedGeneration": 1}}
    assert not reconcile.needs_ticks(b)
    b["status"]["pendingEvents"] = [{"name": "x"}]
    assert reconcile.needs_ticks(b)


def test_a_refused_post_is_kept_for_later_and_does_not_stop_the_rollout() -> None:
    kube = FakeKube()

    async def refuse(event: dict[str, Any]) -> None:
        raise ApiException(status=403, reason="Forbidden")

    kube.post_event = refuse  # type: ignore[assignment]
    run_until_promoted(kube)
    pending = kube.body["status"]["pendingEvents"]
    assert [p["reason"] for p in pending][-1] == "Promoted"
    assert len({p["name"] for p in pending}) == len(pending)


def test_a_reposted_aggregate_updates_its_count_and_a_reposted_event_is_a_no_op() -> None:
    kube = FakeKube()
    m = md()
    first = announce.event_body(
        m,
        {
            "name": "e1",
            "type": "Normal",
            "reason": "AnalysisInconclusive",
            "message": "a",
            "count": 1,
            "time": "t1",
        },
    )
    asyncio.run(kube.post_event(first))
    again = {**first, "count": 2, "message": "b", "lastTimestamp": "t2"}
    asyncio.run(kube.post_event(again))
    assert kube.events["e1"]["count"] == 2 and kube.events["e1"]["message"] == "b"
    asyncio.run(kube.post_event(first))  # count 1: the same Event posted twice
    assert kube.events["e1"]["count"] == 2 and kube.events["e1"]["firstTimestamp"] == "t1"


def test_a_deprecated_field_is_logged_once_per_generation(caplog) -> None:
    kube = FakeKube()
    kube.body["spec"]["predictor"]["batching"] = {"maxLatencyMs": 5}
    (note,) = spec.parse(kube.body).deprecations
    operator = new_operator(kube, T0)
    with caplog.at_level("WARNING", logger="modeldeploy_operator.reconcile"):
        for _ in range(3):
            asyncio.run(operator.reconcile(copy.deepcopy(kube.body)))
        kube.body["metadata"]["generation"] = 2
        asyncio.run(operator.reconcile(copy.deepcopy(kube.body)))
    said = [r.getMessage() for r in caplog.records if "is deprecated" in r.getMessage()]
    assert said == [f"ns/fraud: {note}"] * 2
