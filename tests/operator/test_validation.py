"""Pre-traffic validation: the pure verdict and its place in the state machine."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from md_factories import Driver, md
from modeldeploy_operator import plugin
from modeldeploy_operator.analysis import validation as v
from modeldeploy_operator.rollout import gating, schedule

A = v.Answers


class TestMeasures:
    def test_agreement_classifier_and_regressor(self):
        assert v.agreement([0, 1, 1, 0], [0, 1, 0, 0], regression=False) == 0.75
        assert v.agreement([1.0, 2.2], [1.0, 2.0], regression=True) == pytest.approx(0.95)
        assert v.agreement([10.0], [1.0], regression=True) == 0.0  # clipped

    def test_accuracy_f1_rmse(self):
        y, p = [0, 0, 1, 1], [0, 1, 1, 1]
        assert v.accuracy(y, p) == 0.75
        # class 0: tp1 fp0 fn1 -> 2/3; class 1: tp2 fp1 fn0 -> 4/5
        assert v.f1_macro(y, p) == pytest.approx((2 / 3 + 4 / 5) / 2)
        assert v.rmse([1.0, 3.0], [2.0, 1.0]) == pytest.approx(math.sqrt(2.5))

    def test_quantile_nearest_rank(self):
        assert v.quantile([], 0.5) is None
        assert v.quantile([3, 1, 2, 4], 0.5) == 2
        assert v.quantile(list(range(1, 101)), 0.99) == 99

    def test_task_from_the_answers(self):
        assert v.is_regression([1.5, 2.0]) and not v.is_regression([0, 1])
        assert not v.is_regression(["fraud", "ok"])


class TestJudge:
    LABELS = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    STABLE = A([0, 1, 0, 1, 0, 1, 0, 1, 0, 0], [0.01] * 20, [0.02] * 3)

    def test_similar_candidate_passes_every_threshold(self):
        cand = A([0, 1, 0, 1, 0, 1, 0, 1, 0, 1], [0.012] * 20, [0.021] * 3)
        report = v.judge(cand, self.STABLE, self.LABELS, v.Thresholds(0.8, 0.05, 1.5))
        assert report.passed, report.failures
        assert report.metrics["agreement"] == 0.9
        assert report.metrics["accuracyDrop"] == pytest.approx(-0.1)
        assert report.metrics["latencyRatio"] == pytest.approx(1.2)
        assert report.message.startswith("validation passed: rows 10, agreement 0.9")

    def test_flipped_candidate_fails_naming_metric_value_and_threshold(self):
        cand = A([1 - p for p in self.STABLE.predictions], [0.01] * 20, [0.02] * 3)
        report = v.judge(cand, self.STABLE, self.LABELS, v.Thresholds(0.9, 0.1, None))
        assert not report.passed
        assert report.failures == (
            "agreement 0 below the minimum 0.9",
            "accuracyDrop 0.8 above the maximum 0.1",
        )

    def test_slow_candidate_fails_on_latency_ratio(self):
        cand = A(self.STABLE.predictions, [0.05] * 20, [0.02] * 3)
        report = v.judge(cand, self.STABLE, None, v.Thresholds(max_latency_ratio=2))
        assert report.failures == ("latencyRatio 5 above the maximum 2",)

    def test_missing_labels_or_samples_never_pass_a_threshold_on_them(self):
        report = v.judge(A([0], [], []), A([0], [], []), None, v.Thresholds(None, 0.1, 2.0))
        assert report.failures == (
            "accuracyDrop: the validation set has no labels (maxAccuracyDrop needs them)",
            "latencyRatio: no latency samples (maxLatencyRatio needs them)",
        )

    def test_regressor_accuracy_drop_is_the_relative_rmse_increase(self):
        labels = [1.0, 2.0, 3.0, 4.0]
        stable = A([1.1, 2.1, 3.1, 4.1])
        cand = A([1.3, 2.3, 3.3, 4.3])
        report = v.judge(cand, stable, labels, v.Thresholds(max_accuracy_drop=1.0))
        assert report.metrics["candidateRmse"] == pytest.approx(0.3)
        assert report.metrics["accuracyDrop"] == pytest.approx(2.0)
        assert report.failures == ("accuracyDrop 2 above the maximum 1",)


VALIDATED = {
    "type": "Canary",
    "canary": {"steps": [{"weight": 10, "pause": "30s"}]},
    "analysis": {"interval": "30s"},
    "validation": {"minAgreement": 0.9, "maxLatencyRatio": 3},
}


def ready_candidate() -> Driver:
    d = Driver(VALIDATED)
    d.deploy_stable()
    d.change("2.0.0")
    d.tick(1, stable_ready=True, candidate_ready=False)
    assert schedule.validation_due(d.md, d.state, d.now)
    return d


class TestStateMachine:
    def test_parse(self):
        cfg = md(strategy=VALIDATED).strategy.validation
        assert (cfg.min_agreement, cfg.max_accuracy_drop, cfg.max_latency_ratio) == (0.9, None, 3)
        assert (cfg.batch_size, cfg.latency_samples, cfg.timeout) == (64, 50, 120.0)
        assert md().strategy.validation is None

    def test_no_traffic_until_validated_then_first_step(self):
        d = ready_candidate()
        d.tick(1, stable_ready=True, candidate_ready=True)
        assert d.stage == "Starting" and d.status["traffic"]["tracks"].keys() == {"stable"}
        ok = gating.ValidationOutcome(True, "validation passed: agreement 1", {"agreement": 1.0})
        d.tick(1, stable_ready=True, candidate_ready=True, validation=ok)
        assert d.stage == "Canary" and d.status["canaryWeight"] == 10
        assert d.status["validation"]["state"] == "Passed"
        assert d.status["validation"]["metrics"] == {"agreement": 1.0}
        assert "ValidationPassed" in d.reasons()
        assert not schedule.validation_due(d.md, d.state, d.now)

    def test_failure_rolls_back_before_any_traffic(self):
        d = ready_candidate()
        bad = gating.ValidationOutcome(
            False, "agreement 0.1 below the minimum 0.9", {"agreement": 0.1}
        )
        d.tick(1, stable_ready=True, candidate_ready=True, validation=bad)
        assert d.phase == "RolledBack"
        degraded = d.condition("Degraded")
        assert degraded["reason"] == "ValidationFailed"
        assert "agreement 0.1 below the minimum 0.9" in degraded["message"]
        assert d.status["validation"]["state"] == "Failed"
        assert d.status["traffic"]["tracks"].keys() == {"stable"}
        assert not any(e.reason in ("CanaryStep", "ShadowStarted") for e in d.events)

    def test_an_attempt_that_could_not_run_is_retried_each_interval(self):
        d = ready_candidate()
        down = gating.ValidationOutcome(
            False, "no Ready stable pod of fraud-x to validate with", conclusive=False
        )
        d.tick(1, stable_ready=True, candidate_ready=True, validation=down)
        assert d.stage == "Starting" and "ValidationInconclusive" in d.reasons()
        assert not schedule.validation_due(d.md, d.state, d.now + dt.timedelta(seconds=10))
        assert schedule.validation_due(d.md, d.state, d.now + dt.timedelta(seconds=30))
        ok = gating.ValidationOutcome(True, "validation passed", {})
        d.tick(30, stable_ready=True, candidate_ready=True, validation=ok)
        assert d.stage == "Canary"

    def test_it_fails_after_three_attempts_that_could_not_run(self):
        d = ready_candidate()
        down = gating.ValidationOutcome(False, "candidate unreachable", conclusive=False)
        for _ in range(gating.VALIDATION_ATTEMPTS):
            d.tick(30, stable_ready=True, candidate_ready=True, validation=down)
        assert d.phase == "RolledBack"
        degraded = d.condition("Degraded")
        assert degraded["reason"] == "ValidationFailed"
        assert "validation could not run 3 times: candidate unreachable" in degraded["message"]

    def test_a_new_candidate_validates_again(self):
        d = ready_candidate()
        ok = gating.ValidationOutcome(True, "ok", {})
        d.tick(1, stable_ready=True, candidate_ready=True, validation=ok)
        d.change("3.0.0")
        d.tick(1, stable_ready=True, candidate_ready=False)
        assert "validation" not in d.status and schedule.validation_due(d.md, d.state, d.now)


def test_plugin_shows_validation():
    obj = {
        "metadata": {"name": "fraud", "namespace": "ns"},
        "spec": {"model": {"name": "fraud"}},
        "status": {
            "phase": "RolledBack",
            "validation": {
                "state": "Failed",
                "message": "agreement 0.1 below the minimum 0.9",
                "metrics": {"agreement": 0.1, "latencyRatio": 1.25, "accuracyDrop": None},
            },
        },
    }
    text = plugin.render_status(obj)
    assert "Validation: Failed: agreement 0.1 below the minimum 0.9" in text
    assert "agreement 0.1" in text and "latencyRatio 1.25" in text


async def test_no_ready_pod_is_an_attempt_that_could_not_run():
    from modeldeploy_operator.gates import validation as validation_io

    class NoPods:
        async def list_pods(self, namespace: str, revision: str) -> list:
            return [{"metadata": {"name": "p"}, "status": {"podIP": "127.0.0.9"}}]  # not Ready

    d = ready_candidate()
    outcome = await validation_io.validate(d.md, d.state, NoPods())
    assert not outcome.passed and not outcome.conclusive
    assert outcome.message.startswith("no Ready candidate pod of fraud-")
