"""Webhooks in the state machine and their payloads (pure, no I/O)."""

from __future__ import annotations

import datetime as dt

from md_factories import T0, Driver, md
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.gates import hookspec, payload
from modeldeploy_operator.rollout import commands, gating, schedule
from modeldeploy_operator.status import Status

OK = gating.HookResult(True, "pre-rollout webhooks answered 2xx: smoke")
NO = gating.HookResult(False, "pre-rollout webhook smoke answered 500: boom")


def strategy(*hooks: dict, **analysis: object) -> dict:
    return {
        "type": "Canary",
        "canary": {"steps": [{"weight": 10, "pause": "30s"}]},
        "analysis": {"interval": "30s", **analysis},
        "webhooks": list(hooks),
    }


def hook(type_: str, name: str = "smoke", **kw: object) -> dict:
    return {"name": name, "type": type_, "url": f"http://127.0.0.1:9/{name}", **kw}


def candidate_ready(s: dict) -> Driver:
    """Stable 1.0.0 serving, 2.0.0 applied, its pods Ready."""
    d = Driver(s)
    d.deploy_stable()
    d.change("2.0.0")
    d.tick(1, stable_ready=True, candidate_ready=False)
    return d


class TestSpec:
    def test_parse(self):
        m = md(
            strategy=strategy(hook("pre-rollout", timeout="2s", metadata={"cmd": "hey"})),
            notifications=[{"name": "chat", "type": "slack", "url": "https://hooks.example/x"}],
        )
        (w,) = m.strategy.webhooks
        assert (w.name, w.type, w.timeout, dict(w.metadata)) == (
            "smoke",
            "pre-rollout",
            2.0,
            {"cmd": "hey"},
        )
        (n,) = m.notifications
        assert (n.type, n.timeout) == ("slack", hookspec.DEFAULT_TIMEOUT)

    def test_webhooks_do_not_change_the_revision(self):
        assert md(strategy=strategy(hook("rollout"))).revision == md(strategy=strategy()).revision


class TestPreRollout:
    def test_waits_for_the_hooks_then_enters_the_first_step(self):
        d = candidate_ready(strategy(hook("pre-rollout")))
        assert schedule.pre_rollout_due(d.md, d.state, d.now)
        d.tick(1, stable_ready=True, candidate_ready=True)  # not called yet: no traffic
        assert d.stage == "Starting" and d.status["canaryWeight"] == 0
        d.tick(1, stable_ready=True, candidate_ready=True, pre_rollout=OK)
        assert d.stage == "Canary" and d.status["canaryWeight"] == 10
        assert d.status["gates"]["preRollout"]["state"] == "Passed"
        assert "PreRolloutPassed" in d.reasons()
        assert not schedule.pre_rollout_due(d.md, d.state, d.now)

    def test_a_failure_rolls_back_before_any_traffic(self):
        d = candidate_ready(strategy(hook("pre-rollout")))
        d.tick(1, stable_ready=True, candidate_ready=True, pre_rollout=NO)
        assert d.phase == "RolledBack"
        degraded = d.condition("Degraded")
        assert (
            degraded["reason"] == "PreRolloutFailed" and "answered 500: boom" in degraded["message"]
        )
        assert set(d.status["traffic"]["tracks"]) == {"stable"}
        assert d.status["blockedRevision"] == d.md.revision

    def test_failures_count_to_the_failure_limit_and_retry_once_per_interval(self):
        d = candidate_ready(strategy(hook("pre-rollout"), failureLimit=2))
        d.tick(1, stable_ready=True, candidate_ready=True, pre_rollout=NO)
        assert d.stage == "Starting" and "PreRolloutFailed" in d.reasons()
        assert not schedule.pre_rollout_due(d.md, d.state, d.now + dt.timedelta(seconds=10))
        assert schedule.pre_rollout_due(d.md, d.state, d.now + dt.timedelta(seconds=30))
        d.tick(30, stable_ready=True, candidate_ready=True, pre_rollout=OK)
        assert d.stage == "Canary"

    def test_second_failure_at_limit_two_rolls_back(self):
        d = candidate_ready(strategy(hook("pre-rollout"), failureLimit=2))
        d.tick(1, stable_ready=True, candidate_ready=True, pre_rollout=NO)
        d.tick(30, stable_ready=True, candidate_ready=True, pre_rollout=NO)
        assert d.phase == "RolledBack"

    def test_not_due_without_pre_rollout_hooks(self):
        d = candidate_ready(strategy(hook("rollout")))
        assert not schedule.pre_rollout_due(d.md, d.state, d.now)


def in_canary(s: dict) -> Driver:
    d = candidate_ready(s)
    d.tick(1, stable_ready=True, candidate_ready=True)
    assert d.stage == "Canary"
    return d


class TestConfirmPromotion:
    def test_promotion_waits_for_a_2xx_while_analysis_goes_on(self):
        d = in_canary(strategy(hook("confirm-promotion", "gate")))
        d.analyse(Verdict.PASS)
        assert d.phase == "Canary" and "AwaitingConfirmation" in d.reasons()
        assert schedule.confirmation_due(d.state)
        assert d.condition("Progressing")["reason"] == "AwaitingConfirmation"
        refused = gating.HookResult(False, "confirm-promotion webhook gate answered 403")
        for _ in range(5):
            d.tick(2, stable_ready=True, candidate_ready=True, confirmation=refused)
        assert d.phase == "Canary" and d.status["canaryWeight"] == 10
        assert "answered 403" in d.condition("Progressing")["message"]
        d.analyse(Verdict.PASS)  # analysis keeps running while waiting
        assert d.phase == "Canary"
        d.tick(
            2, stable_ready=True, candidate_ready=True, confirmation=gating.HookResult(True, "ok")
        )
        assert d.phase == "Succeeded" and d.status["stable"]["version"] == "2.0.0"
        assert not schedule.confirmation_due(d.state)

    def test_a_failure_while_waiting_rolls_back(self):
        d = in_canary(strategy(hook("confirm-promotion", "gate")))
        d.analyse(Verdict.PASS)
        d.analyse(Verdict.FAIL)
        assert d.phase == "RolledBack"

    def test_a_user_promote_does_not_wait(self):
        d = in_canary(strategy(hook("confirm-promotion", "gate")))
        promote = commands.Command("promote", "n1")
        d.tick(1, stable_ready=True, candidate_ready=True, command=promote)
        assert d.phase == "Succeeded"


class TestRolloutAndRollbackHooks:
    def test_rollout_hooks_alone_make_analysis_due_and_gate_the_step(self):
        d = in_canary(strategy(hook("rollout", "load"), metrics=[]))
        assert schedule.analysis_due(d.md, d.state, d.now + dt.timedelta(seconds=30))
        d.tick(60, stable_ready=True, candidate_ready=True)  # time alone: no pass yet
        assert d.phase == "Canary"
        d.analyse(Verdict.PASS)
        assert d.phase == "Succeeded"

    def test_a_rollback_hook_answering_2xx_rolls_back(self):
        d = in_canary(strategy(hook("rollback", "stop")))
        d.tick(
            1,
            stable_ready=True,
            candidate_ready=True,
            rollback_request="rollback webhook stop answered 200",
        )
        assert d.phase == "RolledBack"
        assert d.condition("Degraded")["reason"] == "RollbackWebhook"


class TestPayload:
    STATUS = {
        "phase": "Canary",
        "canaryWeight": 10,
        "currentStep": 0,
        "stable": {"version": "1.0.0", "revision": "fraud-aaaa"},
        "candidate": {"version": "2.0.0", "revision": "fraud-bbbb"},
        "analysis": {"failures": 1, "measurements": [{"metric": "error-rate"}] * 30},
    }

    def test_flagger_fields(self):
        w = hookspec.parse_webhooks([hook("rollout", metadata={"cmd": "hey -z 1m"})])[0]
        body = payload.hook_payload(
            w,
            name="fraud",
            namespace="ns",
            model="fraud",
            status=Status.from_api(self.STATUS),
            now=T0,
        )
        assert {k: body[k] for k in ("name", "namespace", "phase", "checksum")} == {
            "name": "fraud",
            "namespace": "ns",
            "phase": "Canary",
            "checksum": "fraud-bbbb",
        }
        assert body["metadata"] == {"cmd": "hey -z 1m"}
        assert body["candidate"] == {"version": "2.0.0", "revision": "fraud-bbbb"}
        assert body["canaryWeight"] == 10 and body["analysis"]["failures"] == 1
        assert len(body["analysis"]["measurements"]) == payload.MAX_PAYLOAD_MEASUREMENTS

    def test_event_metadata_as_flagger_sends_it(self):
        w = hookspec.parse_webhooks([hook("event")])[0]
        body = payload.hook_payload(
            w,
            name="fraud",
            namespace="ns",
            model="fraud",
            status=Status.from_api(self.STATUS),
            event=("Warning", "RolledBack", "rolled back: error-rate 0.2 above the maximum 0.01"),
            now=T0,
        )
        meta = body["metadata"]
        assert meta["eventType"] == "Warning" and meta["eventReason"] == "RolledBack"
        assert "error-rate 0.2" in meta["eventMessage"]
        assert meta["timestamp"] == str(int(T0.timestamp() * 1000))
        assert all(isinstance(v, str) for v in meta.values())

    def test_slack_text(self):
        body = payload.slack_payload(
            name="fraud", namespace="ns", event=("Warning", "RolledBack", "error-rate 0.2")
        )
        assert body == {"text": ":warning: *ns/fraud* RolledBack: error-rate 0.2"}


def test_plugin_status_shows_the_gates():
    from modeldeploy_operator import plugin

    obj = {
        "metadata": {"name": "fraud", "namespace": "ns"},
        "spec": {"model": {"name": "fraud"}},
        "status": {
            "phase": "Canary",
            "stage": "Canary",
            "gates": {
                "preRollout": {
                    "state": "Passed",
                    "message": "pre-rollout webhooks answered 2xx: smoke",
                },
                "confirmPromotion": {"waitingSince": "T", "message": "gate answered 403"},
            },
        },
    }
    text = plugin.render_status(obj)
    assert "Pre-rollout: Passed pre-rollout webhooks answered 2xx: smoke" in text
    assert "Promotion:  waiting since T: gate answered 403" in text
    obj["status"]["stage"] = "Done"
    assert "Promotion:" not in plugin.render_status(obj)
