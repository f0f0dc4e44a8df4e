"""The rollout state machine, driven tick by tick with a fake clock."""

from __future__ import annotations

import copy

from md_factories import Driver, started
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.rollout import commands, pauses, schedule
from modeldeploy_operator.status import Status

PASS, FAIL, UNSURE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE
SHADOW = {
    "type": "Shadow",
    "shadow": {"duration": "1m", "minRequests": 150},
    "analysis": {"interval": "30s"},
}
SHADOW_THEN_CANARY = {**SHADOW, "canary": {"steps": [{"weight": 20, "pause": "30s"}]}}
FULL = {"type": "Full", "bakeDuration": "1m", "analysis": {"interval": "30s"}}


class TestFirstRevision:
    def test_pending_then_succeeded_and_ready(self):
        d = Driver()
        d.tick(stable_ready=False)
        assert d.phase == "Pending"
        assert d.status["traffic"]["tracks"] == {
            "stable": {"service": "fraud-stable", "version": "1.0.0", "revision": d.md.revision}
        }
        assert d.condition("Ready")["status"] == "False"
        d.tick(5, stable_ready=True)
        assert d.phase == "Succeeded"
        assert d.condition("Ready") | {"lastTransitionTime": None} == {
            "type": "Ready",
            "status": "True",
            "reason": "RolloutComplete",
            "message": f"version 1.0.0 ({d.md.revision}) serves all traffic",
            "observedGeneration": 1,
            "lastTransitionTime": None,
        }
        assert "candidate" not in d.status
        assert d.status["history"][-1]["result"] == "Promoted"

    def test_deadline_fails_then_recovers_when_ready(self):
        d = Driver()
        d.tick(stable_ready=False)
        d.tick(601, stable_ready=False)
        assert d.phase == "Failed"
        assert d.condition("Degraded")["reason"] == "ProgressDeadlineExceeded"
        d.tick(5, stable_ready=True)
        assert d.phase == "Succeeded"
        assert d.condition("Degraded")["status"] == "False"

    def test_new_spec_before_first_is_ready_replaces_it(self):
        d = Driver()
        d.tick(stable_ready=False)
        d.change("1.0.1")
        d.tick(1, stable_ready=False)
        assert d.phase == "Pending"
        assert d.status["stable"]["version"] == "1.0.1"
        assert "candidate" not in d.status


class TestCanary:
    def test_every_step_then_promotion(self):
        d = started()
        assert d.phase == "Canary" and d.status["canaryWeight"] == 10
        assert d.status["traffic"]["tracks"]["canary"]["version"] == "2.0.0"
        assert d.status["traffic"]["tracks"]["stable"]["version"] == "1.0.0"
        assert not schedule.analysis_due(d.md, d.state, d.now)
        d.analyse(PASS)
        assert d.status["canaryWeight"] == 10  # pause of 1m not over yet
        d.analyse(PASS)
        assert d.status["canaryWeight"] == 50 and d.status["currentStep"] == 1
        d.analyse(PASS)
        d.analyse(PASS)
        assert d.phase == "Succeeded"
        assert d.status["stable"]["version"] == "2.0.0"
        assert d.status["canaryWeight"] == 0
        assert set(d.status["traffic"]["tracks"]) == {"stable"}
        assert d.condition("Ready")["status"] == "True"
        assert [h["result"] for h in d.status["history"]] == ["Promoted", "Promoted"]
        assert d.reasons().count("CanaryStep") == 2

    def test_step_needs_a_conclusive_pass_not_only_time(self):
        d = started()
        d.analyse(UNSURE)
        d.analyse(UNSURE)
        assert d.status["currentStep"] == 0, "time alone must not advance a step"
        d.analyse(PASS)
        assert d.status["currentStep"] == 1

    def test_failure_rolls_back_in_one_step(self):
        d = started()
        d.analyse(PASS)
        d.analyse(FAIL)
        assert d.phase == "RolledBack"
        assert d.status["canaryWeight"] == 0
        assert set(d.status["traffic"]["tracks"]) == {"stable"}
        degraded = d.condition("Degraded")
        assert degraded["status"] == "True" and degraded["reason"] == "AnalysisFailed"
        assert "error-rate is 0.5" in degraded["message"]
        assert d.status["history"][-1]["result"] == "RolledBack"
        assert d.events[-1].type == "Warning" and d.events[-1].reason == "RolledBack"

    def test_failure_limit_counts_failures(self):
        strategy = {
            "type": "Canary",
            "canary": {"steps": [{"weight": 10, "pause": "5m"}]},
            "analysis": {"interval": "30s", "failureLimit": 3},
        }
        d = started(strategy)
        d.analyse(FAIL)
        d.analyse(PASS)
        d.analyse(FAIL)
        assert d.phase == "Canary"
        d.analyse(FAIL)
        assert d.phase == "RolledBack"

    def test_inconclusive_limit_pauses_never_promotes(self):
        d = started()
        for _ in range(3):
            d.analyse(UNSURE)
        assert d.phase == "Paused"
        assert d.condition("Progressing")["reason"] == "InconclusiveAnalysis"
        assert pauses.pause_reason(d.state) == "InconclusiveAnalysis"
        assert d.condition("Degraded")["status"] == "True"
        for _ in range(10):  # time passes, nothing moves while paused
            d.tick(60, candidate_ready=True, stable_ready=True)
            assert not schedule.analysis_due(d.md, d.state, d.now)
        assert d.phase == "Paused" and d.status["canaryWeight"] == 10

    def test_pass_resets_the_inconclusive_count(self):
        d = started()
        d.analyse(UNSURE)
        d.analyse(UNSURE)
        d.analyse(PASS)
        d.analyse(UNSURE)
        d.analyse(UNSURE)
        assert d.phase == "Canary"

    def test_initial_delay_postpones_analysis(self):
        strategy = {
            "type": "Canary",
            "canary": {"steps": [{"weight": 10, "pause": "5m"}]},
            "analysis": {"interval": "30s", "initialDelay": "1m"},
        }
        d = started(strategy)
        d.tick(60)
        assert not schedule.analysis_due(d.md, d.state, d.now)
        d.tick(30)
        assert schedule.analysis_due(d.md, d.state, d.now)

    def test_no_auto_promote_waits_for_promote_command(self):
        strategy = {
            "type": "Canary",
            "canary": {"steps": [{"weight": 10, "pause": "30s"}]},
            "analysis": {"interval": "30s"},
            "autoPromote": False,
        }
        d = started(strategy)
        d.analyse(PASS)
        assert d.phase == "Paused"
        assert d.condition("Progressing")["reason"] == "AwaitingPromotion"
        assert pauses.pause_reason(d.state) == "AwaitingPromotion"
        d.tick(1, candidate_ready=True, command=commands.Command("promote", "n1"))
        assert d.phase == "Succeeded" and d.status["stable"]["version"] == "2.0.0"
        assert pauses.pause_reason(d.state) is None

    def test_candidate_never_ready_is_rolled_back_at_deadline(self):
        d = Driver()
        d.deploy_stable()
        d.change("2.0.0")
        d.tick(1, stable_ready=True)
        d.tick(599, stable_ready=True)
        assert d.phase == "Progressing"
        d.tick(2, stable_ready=True)
        assert d.phase == "RolledBack"
        assert d.condition("Degraded")["reason"] == "ProgressDeadlineExceeded"

    def test_deadline_message_names_why_the_candidate_waits(self):
        d = Driver()
        d.deploy_stable()
        d.change("2.0.0")
        waiting = "pod fraud-x container predictor ImagePullBackOff"
        d.tick(1, stable_ready=True, candidate_waiting=waiting)
        d.tick(601, stable_ready=True, candidate_waiting=waiting)
        assert d.phase == "RolledBack"
        assert d.condition("Degraded")["message"].endswith(f"within 600s ({waiting})")

    def test_crash_looping_candidate_is_rolled_back(self):
        d = started()
        d.tick(1, candidate_failure="pod fraud-x: CrashLoopBackOff")
        assert d.phase == "RolledBack"
        assert "CrashLoopBackOff" in d.condition("Degraded")["message"]


class TestShadow:
    def test_mirrors_then_promotes_after_duration_and_requests(self):
        d = started(SHADOW)
        assert d.phase == "Shadow"
        traffic = d.status["traffic"]
        assert traffic["canaryWeight"] == 0 and traffic["mirrorPercent"] == 100
        assert set(traffic["tracks"]) == {"stable", "shadow"}
        d.analyse(PASS)  # 30s, 100 requests
        d.analyse(PASS)  # 60s, 200 requests >= 150
        assert d.phase == "Succeeded"

    def test_waits_for_min_requests(self):
        d = started({**SHADOW, "shadow": {"duration": "30s", "minRequests": 250}})
        d.analyse(PASS)
        d.analyse(PASS)
        assert d.phase == "Shadow"
        d.analyse(PASS)
        assert d.phase == "Succeeded"

    def test_disagreement_rolls_back_without_primary_traffic(self):
        d = started(SHADOW)
        d.analyse(FAIL)
        assert d.phase == "RolledBack"
        assert all("canary" not in e["traffic"]["tracks"] for e in [d.status])

    def test_continues_into_canary_steps(self):
        d = started(SHADOW_THEN_CANARY)
        d.analyse(PASS)
        d.analyse(PASS)
        assert d.phase == "Canary" and d.status["canaryWeight"] == 20
        assert "shadow" not in d.status["traffic"]["tracks"]
        d.analyse(PASS)
        assert d.phase == "Succeeded"


class TestFull:
    def test_switch_then_bake_then_promote(self):
        d = started(FULL)
        assert d.phase == "Progressing" and d.status["canaryWeight"] == 100
        d.analyse(PASS)
        d.analyse(PASS)
        assert d.phase == "Succeeded"

    def test_bake_failure_rolls_back(self):
        d = started(FULL)
        d.analyse(FAIL)
        assert d.phase == "RolledBack" and d.status["canaryWeight"] == 0


class TestSuperseding:
    def test_new_spec_mid_canary_replaces_candidate(self):
        d = started()
        d.analyse(PASS)
        d.analyse(PASS)
        assert d.status["currentStep"] == 1
        d.change("3.0.0")
        d.tick(1, candidate_ready=False, stable_ready=True)
        assert d.phase == "Progressing" and d.status["candidate"]["version"] == "3.0.0"
        assert d.status["canaryWeight"] == 0 and d.status["currentStep"] == 0
        assert d.status["history"][-1]["result"] == "Superseded"
        assert d.status["history"][-1]["version"] == "2.0.0"
        assert d.status["analysis"]["measurements"] == []

    def test_spec_back_to_stable_ends_rollout(self):
        d = started()
        d.change("1.0.0")
        d.tick(1, stable_ready=True)
        assert d.phase == "Succeeded" and "candidate" not in d.status
        assert d.status["stable"]["version"] == "1.0.0"

    def test_rolled_back_revision_is_not_retried(self):
        d = started()
        d.analyse(FAIL)
        revision = d.status["candidate"]["revision"]
        for _ in range(3):
            d.tick(60, stable_ready=True, candidate_ready=True)
        assert d.phase == "RolledBack" and d.status["blockedRevision"] == revision
        d.change("2.0.0")  # same model again, new generation: still blocked
        d.tick(1, stable_ready=True)
        assert d.phase == "RolledBack"

    def test_new_version_after_rollback_starts_a_rollout(self):
        d = started()
        d.analyse(FAIL)
        d.change("2.0.1")
        d.tick(1, stable_ready=True)
        assert d.phase == "Progressing" and d.status["candidate"]["version"] == "2.0.1"
        assert d.condition("Degraded")["status"] == "False"
        assert "blockedRevision" not in d.status


class TestRestart:
    def test_status_alone_resumes_the_same_step(self):
        d = started()
        d.analyse(PASS)
        d.analyse(PASS)
        saved = copy.deepcopy(d.status)
        assert saved["currentStep"] == 1 and saved["canaryWeight"] == 50
        # A new operator process: only the stored status and a later clock.
        fresh = Driver()
        fresh.md, fresh.state, fresh.now = d.md, Status.from_api(saved), d.now
        fresh.tick(5, candidate_ready=True, stable_ready=True)
        assert fresh.status["currentStep"] == 1 and fresh.status["canaryWeight"] == 50
        assert not [e for e in fresh.events if e.reason in ("CanaryStep", "RolloutStarted")]

    def test_same_observations_twice_is_idempotent(self):
        d = started()
        d.analyse(PASS)
        first = copy.deepcopy(d.status)
        d.tick(0, candidate_ready=True, stable_ready=True)
        assert d.status == first

    def test_conditions_keep_transition_time_when_unchanged(self):
        d = started()
        t = d.condition("Progressing")["lastTransitionTime"]
        d.analyse(PASS)
        assert d.condition("Progressing")["lastTransitionTime"] == t
