"""Webhook calls and notifications against real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from cluster_helpers import free_port
from hook_receiver import Receiver
from md_factories import T0, md
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.gates.client import HookClient
from modeldeploy_operator.gates.dispatch import Delivery, Dispatcher
from modeldeploy_operator.gates.observe import Gates
from modeldeploy_operator.rollout import gating
from modeldeploy_operator.rollout.decision import Event
from modeldeploy_operator.status import Status
from prometheus_client import REGISTRY


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def calls(type_: str, result: str) -> float:
    labels = {"type": type_, "result": result}
    return REGISTRY.get_sample_value("modeldeploy_operator_webhook_calls_total", labels) or 0.0


class TestClient:
    async def test_2xx_and_errors(self, receiver):
        client = HookClient()
        try:
            receiver.answer("bad", 503)
            ok = await client.post(receiver.url("good"), {"a": 1}, 2)
            bad = await client.post(receiver.url("bad"), {"a": 1}, 2)
            refused = await client.post(f"http://127.0.0.1:{free_port()}/x", {}, 2)
            receiver.delay["slow"] = 2
            slow = await client.post(receiver.url("slow"), {}, 0.2)
        finally:
            await client.aclose()
        assert ok.ok and ok.status == 200
        assert not bad.ok and bad.status == 503 and '"path": "bad"' in bad.message
        assert not refused.ok and refused.status is None and "unreachable" in refused.message
        assert not slow.ok and slow.message == "no answer within 0.2s"
        assert receiver.got("good") == [{"a": 1}]


class TestDispatcher:
    async def test_retries_a_5xx_then_delivers(self, receiver):
        receiver.answer("flaky", 500, 502, 200)
        d = Dispatcher(HookClient(), backoff=0.01)
        before = calls("notify-webhook", "ok")
        try:
            assert d.submit(Delivery("notify-webhook", "n", receiver.url("flaky"), {"i": 1}, 2))
            await d.drain()
        finally:
            await d.aclose()
            await d.client.aclose()
        assert len(receiver.got("flaky")) == 3
        assert calls("notify-webhook", "ok") == before + 1

    async def test_a_4xx_is_not_retried_and_is_counted_failed(self, receiver):
        receiver.answer("gone", 404)
        d = Dispatcher(HookClient(), backoff=0.01)
        before = calls("event", "failed")
        try:
            d.submit(Delivery("event", "e", receiver.url("gone"), {}, 2))
            await d.drain()
        finally:
            await d.aclose()
            await d.client.aclose()
        assert len(receiver.got("gone")) == 1
        assert calls("event", "failed") == before + 1

    async def test_a_full_queue_drops_without_waiting(self, receiver):
        receiver.delay["slow"] = 0.5
        d = Dispatcher(HookClient(), maxsize=2, workers=1, attempts=1)
        before = calls("notify-slack", "dropped")
        try:
            results = [
                d.submit(Delivery("notify-slack", "s", receiver.url("slow"), {"i": i}, 2))
                for i in range(6)
            ]
            await d.drain()
        finally:
            await d.aclose()
            await d.client.aclose()
        # One taken by the worker as soon as it runs, at most two queued: the rest dropped.
        assert results[:2] == [True, True] and not all(results)
        assert calls("notify-slack", "dropped") == before + results.count(False)
        assert len(receiver.got("slow")) == results.count(True)


def model(receiver: Receiver, *hooks: tuple[str, str], notifications=()):
    return md(
        "2.0.0",
        strategy={
            "type": "Canary",
            "canary": {"steps": [{"weight": 10, "pause": "30s"}]},
            "analysis": {"interval": "30s"},
            "webhooks": [
                {"name": path, "type": type_, "url": receiver.url(path), "timeout": "2s"}
                for type_, path in hooks
            ],
        },
        notifications=list(notifications),
    )


STARTING = {
    "phase": "Progressing",
    "stage": "Starting",
    "stable": {"version": "1.0.0", "revision": "fraud-aaaa"},
    "candidate": {"version": "2.0.0", "revision": "fraud-bbbb"},
}


class TestGates:
    async def test_pre_rollout_all_must_answer_2xx(self, receiver):
        receiver.answer("check", 500)
        m = model(receiver, ("pre-rollout", "smoke"), ("pre-rollout", "check"))
        gates = Gates()
        try:
            seen = await gates.observe(
                m, Status.from_api(STARTING), T0, candidate_ready=True, analysis_due=False
            )
            not_ready = await gates.observe(
                m, Status.from_api(STARTING), T0, candidate_ready=False, analysis_due=False
            )
        finally:
            await gates.aclose()
        assert seen.pre_rollout == gating.HookResult(
            False, 'pre-rollout webhook check answered 500: {"path": "check"}'
        )
        assert not_ready.pre_rollout is None  # never before the candidate is Ready
        (body,) = receiver.got("smoke")
        assert body["name"] == "fraud" and body["checksum"] == "fraud-bbbb"
        assert body["phase"] == "Progressing" and body["type"] == "pre-rollout"

    async def test_rollout_hooks_become_measurements(self, receiver):
        receiver.answer("load", 502)
        m = model(receiver, ("rollout", "load"), ("rollout", "ok"))
        gates = Gates()
        try:
            ms = await gates.rollout_measurements(
                m, Status.from_api({**STARTING, "stage": "Canary"})
            )
        finally:
            await gates.aclose()
        assert [(x.metric, x.verdict, x.value) for x in ms] == [
            ("webhook/load", Verdict.FAIL, 502.0),
            ("webhook/ok", Verdict.PASS, 200.0),
        ]

    async def test_rollback_hook_polled_with_analysis(self, receiver):
        receiver.answer("stop", 404)
        m = model(receiver, ("rollback", "stop"))
        canary = {**STARTING, "stage": "Canary"}
        gates = Gates()
        try:
            idle = await gates.observe(
                m, Status.from_api(canary), T0, candidate_ready=True, analysis_due=False
            )
            kept = await gates.observe(
                m, Status.from_api(canary), T0, candidate_ready=True, analysis_due=True
            )
            receiver.answer("stop", 200)
            asked = await gates.observe(
                m, Status.from_api(canary), T0, candidate_ready=True, analysis_due=True
            )
        finally:
            await gates.aclose()
        assert idle.rollback_request is None and kept.rollback_request is None
        assert asked.rollback_request == "rollback webhook stop answered 200"
        assert len(receiver.got("stop")) == 2

    async def test_announce_sends_events_post_rollout_and_notifications(self, receiver):
        m = model(
            receiver,
            ("event", "events"),
            ("post-rollout", "after"),
            notifications=[
                {"name": "chat", "type": "slack", "url": receiver.url("slack")},
                {"name": "ops", "type": "webhook", "url": receiver.url("generic")},
            ],
        )
        events = [
            Event("Normal", "AnalysisInconclusive", "too few requests"),
            Event("Warning", "RolledBack", "rolled back: error-rate 0.2 above 0.01"),
        ]
        client = HookClient()
        gates = Gates(client, Dispatcher(client, backoff=0.01))
        try:
            gates.announce(m, Status.from_api({**STARTING, "phase": "RolledBack"}), events, T0)
            await asyncio.wait_for(gates.dispatcher.drain(), 10)
        finally:
            await gates.aclose()
        # Four workers deliver: the order between deliveries is not kept.
        assert sorted(b["metadata"]["eventReason"] for b in receiver.got("events")) == [
            "AnalysisInconclusive",
            "RolledBack",
        ]
        (after,) = receiver.got("after")
        assert after["type"] == "post-rollout" and after["phase"] == "RolledBack"
        # Per-run noise stays out of chat; the rollback is there, with its numbers.
        assert receiver.got("slack") == [
            {"text": ":warning: *ns/fraud* RolledBack: rolled back: error-rate 0.2 above 0.01"}
        ]
        (generic,) = receiver.got("generic")
        assert generic["reason"] == "RolledBack" and generic["candidate"]["version"] == "2.0.0"

    async def test_a_dead_receiver_never_holds_announce(self):
        dead = f"http://127.0.0.1:{free_port()}/x"
        m = md(
            "2.0.0",
            notifications=[{"name": "dead", "type": "webhook", "url": dead, "timeout": "1s"}],
        )
        client = HookClient()
        gates = Gates(client, Dispatcher(client, backoff=0.01))
        before = calls("notify-webhook", "failed")
        try:
            # announce is synchronous: it only queues, whatever the receiver does.
            gates.announce(m, Status.from_api(STARTING), [Event("Normal", "Promoted", "p")], T0)
            await asyncio.wait_for(gates.dispatcher.drain(), 10)
        finally:
            await gates.aclose()
        assert calls("notify-webhook", "failed") == before + 1
