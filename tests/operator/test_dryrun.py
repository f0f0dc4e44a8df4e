"""Dry-run metrics: measured and shown, never counted toward the limits."""

from __future__ import annotations

import datetime as dt

from md_factories import Driver, md
from modeldeploy_operator import plugin, spec
from modeldeploy_operator.analysis import runner, verdicts
from modeldeploy_operator.analysis.verdicts import AnalysisResult, Verdict
from modeldeploy_operator.status import Status
from test_analysis import FakeProvider, canary_status

ERR = spec.MetricSpec("error-rate", max=0.01)
DRIFT_DRY = spec.MetricSpec("feature-drift", max=0.1, dry_run=True)


def run_of(*measurements: verdicts.Measurement, requests: int = 100) -> AnalysisResult:
    return AnalysisResult(tuple(measurements), requests)


class TestVerdicts:
    def test_parse_reads_dry_run(self):
        m = md(
            strategy={
                "type": "Canary",
                "canary": {"steps": [{"weight": 10}]},
                "analysis": {
                    "metrics": [
                        {"name": "error-rate", "max": 0.01},
                        {"name": "feature-drift", "max": 0.1, "dryRun": True},
                    ]
                },
            }
        )
        assert [x.dry_run for x in m.strategy.analysis.metrics] == [False, True]
        assert [x.name for x in m.strategy.analysis.gating_metrics] == ["error-rate"]

    def test_a_failing_dry_run_metric_does_not_fail_the_run(self):
        result = run_of(verdicts.judge(ERR, 0.0), verdicts.judge(DRIFT_DRY, 0.9))
        assert result.verdict is Verdict.PASS
        assert result.first_failure is None
        (shown,) = result.dry_run_failures
        assert shown.metric == "feature-drift" and shown.verdict is Verdict.FAIL
        assert "0.9 above the maximum 0.1" in shown.message

    def test_an_inconclusive_dry_run_metric_does_not_make_the_run_inconclusive(self):
        result = run_of(verdicts.judge(ERR, 0.0), verdicts.judge(DRIFT_DRY, None))
        assert result.verdict is Verdict.PASS and result.first_inconclusive is None

    def test_a_counted_failure_still_fails_beside_a_passing_dry_run(self):
        result = run_of(verdicts.judge(ERR, 0.5), verdicts.judge(DRIFT_DRY, 0.0))
        assert result.verdict is Verdict.FAIL and result.first_failure.metric == "error-rate"

    def test_only_dry_run_metrics_decide_nothing(self):
        result = run_of(verdicts.judge(DRIFT_DRY, 0.0))
        assert result.counted == () and result.verdict is Verdict.INCONCLUSIVE

    def test_request_gate_keeps_the_dry_run_mark(self):
        result = verdicts.gate_on_requests([verdicts.judge(DRIFT_DRY, 0.9)], 3, 50)
        (m,) = result.measurements
        assert m.dry_run and m.verdict is Verdict.INCONCLUSIVE and "too few" in m.message

    def test_status_marks_dry_run_measurements_only(self):
        assert verdicts.judge(DRIFT_DRY, 0.2).to_status("t")["dryRun"] is True
        assert "dryRun" not in verdicts.judge(ERR, 0.2).to_status("t")


class TestRunner:
    async def test_dry_run_metric_is_queried_and_marked(self):
        provider = FakeProvider(
            {
                'code=~"5.."': [({}, 0.0)],
                "feature_drift": [({}, 0.7)],
                "modeldeploy_requests_total": [({}, 120.0)],
            }
        )
        m = md(
            strategy={
                "type": "Canary",
                "canary": {"steps": [{"weight": 10}]},
                "analysis": {
                    "minRequests": 50,
                    "metrics": [
                        {"name": "error-rate", "max": 0.01},
                        {"name": "feature-drift", "max": 0.2, "dryRun": True},
                    ],
                },
            }
        )
        result = await runner.run(m, Status.from_api(canary_status()), provider)
        assert any("feature_drift" in q for q in provider.seen)
        assert [(x.metric, x.verdict, x.dry_run) for x in result.measurements] == [
            ("error-rate", Verdict.PASS, False),
            ("feature-drift", Verdict.FAIL, True),
        ]
        assert result.verdict is Verdict.PASS


def strategy(metrics: list[dict], **analysis: object) -> dict:
    return {
        "type": "Canary",
        "canary": {"steps": [{"weight": 10, "pause": "30s"}, {"weight": 50, "pause": "30s"}]},
        "analysis": {"interval": "30s", "metrics": metrics, **analysis},
    }


def started(s: dict) -> Driver:
    d = Driver(s)
    d.deploy_stable()
    d.change("2.0.0")
    d.tick(1, stable_ready=True, candidate_ready=True)
    assert d.phase == "Canary"
    return d


def tick_with(d: Driver, result: AnalysisResult) -> None:
    d.now += dt.timedelta(seconds=30)
    d.tick(candidate_ready=True, stable_ready=True, analysis=result)


class TestRollout:
    METRICS = [
        {"name": "error-rate", "max": 0.01},
        {"name": "feature-drift", "max": 0.1, "dryRun": True},
    ]

    def test_failing_dry_run_metric_never_rolls_back_and_is_shown(self):
        d = started(strategy(self.METRICS))
        for _ in range(2):  # failureLimit 1: a counted failure would roll back at once
            tick_with(d, run_of(verdicts.judge(ERR, 0.0), verdicts.judge(DRIFT_DRY, 0.9)))
        assert d.phase == "Succeeded" and d.status["stable"]["version"] == "2.0.0"
        assert d.reasons().count("DryRunMetricFailed") == 2
        warn = next(e for e in d.events if e.reason == "DryRunMetricFailed")
        assert warn.type == "Warning" and "feature-drift 0.9 above the maximum 0.1" in warn.message
        shown = [m for m in d.status["analysis"]["measurements"] if m.get("dryRun")]
        assert len(shown) == 2 and all(m["verdict"] == "Fail" for m in shown)
        assert d.status["analysis"]["failures"] == 0

    def test_inconclusive_dry_run_metric_never_pauses(self):
        d = started(strategy(self.METRICS, inconclusiveLimit=1))
        tick_with(d, run_of(verdicts.judge(ERR, 0.0), verdicts.judge(DRIFT_DRY, None)))
        assert d.phase == "Canary" and d.status["analysis"]["inconclusive"] == 0

    def test_counted_metric_still_rolls_back(self):
        d = started(strategy(self.METRICS))
        tick_with(d, run_of(verdicts.judge(ERR, 0.5), verdicts.judge(DRIFT_DRY, 0.0)))
        assert d.phase == "RolledBack"
        assert "error-rate" in d.condition("Degraded")["message"]

    def test_only_dry_run_metrics_advance_by_time(self):
        d = started(
            strategy([{"name": "feature-drift", "max": 0.1, "dryRun": True}], inconclusiveLimit=1)
        )
        tick_with(d, run_of(verdicts.judge(DRIFT_DRY, 0.9)))  # fails, but only shown
        tick_with(d, run_of(verdicts.judge(DRIFT_DRY, None)))  # no data, but only shown
        assert d.phase == "Succeeded"
        assert d.status["analysis"]["failures"] == 0
        assert d.status["analysis"].get("inconclusive", 0) == 0


def test_plugin_status_marks_dry_run_rows():
    obj = {
        "metadata": {"name": "fraud", "namespace": "ns"},
        "spec": {"model": {"name": "fraud"}},
        "status": {
            "phase": "Canary",
            "analysis": {
                "measurements": [
                    verdicts.judge(ERR, 0.0).to_status("t1"),
                    verdicts.judge(DRIFT_DRY, 0.9).to_status("t1"),
                ]
            },
        },
    }
    lines = plugin.render_status(obj).splitlines()
    drift = next(line for line in lines if "feature-drift" in line)
    err = next(line for line in lines if "error-rate" in line)
    assert "Fail (dry run)" in drift
    assert "dry run" not in err and "Pass" in err


def test_operator_metric_counts_dry_run_measurements_apart():
    from modeldeploy_operator import metrics
    from prometheus_client import REGISTRY

    def value(dry: str, verdict: str) -> float:
        labels = {"metric": "feature-drift", "verdict": verdict, "dry_run": dry}
        return REGISTRY.get_sample_value("modeldeploy_operator_measurements_total", labels) or 0.0

    before = value("true", "Fail"), value("false", "Fail")
    metrics.count_measurements([verdicts.judge(DRIFT_DRY, 0.9)])
    assert value("true", "Fail") == before[0] + 1
    assert value("false", "Fail") == before[1]
