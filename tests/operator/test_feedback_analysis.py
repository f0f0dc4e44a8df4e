"""The ground-truth metrics `accuracy` and `mean-absolute-error`: PromQL,
their own minSamples gate, and a run against a fake provider."""

from __future__ import annotations

import pytest
from modeldeploy_operator import spec
from modeldeploy_operator.analysis import prometheus, queries, runner, verdicts
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.status import Status
from test_analysis import FakeProvider, canary_status, model

T = queries.Target("ns", "fraud", "fraud-aaaa", "fraud-bbbb", "canary", "30s")
ACC = spec.MetricSpec("accuracy", min=0.9, min_samples=50)
MAE = spec.MetricSpec("mean-absolute-error", max=2.0)


def test_queries_divide_counters_of_the_candidate_revision():
    sel = '{namespace="ns",revision="fraud-aaaa"}'
    outcomes = f"sum(increase(modeldeploy_feedback_outcomes_total{sel}[30s]))"
    assert queries.labelled_outcomes(T) == outcomes
    assert queries.accuracy(T) == (
        f"(sum(increase(modeldeploy_feedback_correct_total{sel}[30s])) or vector(0)) / {outcomes}"
    )
    assert "modeldeploy_feedback_absolute_error_total" in queries.mean_absolute_error(T)


@pytest.mark.parametrize(
    ("metric", "value", "samples", "verdict", "message"),
    [
        (ACC, 0.95, 50, Verdict.PASS, "accuracy 0.95 within >= 0.9"),
        (ACC, 0.5, 50, Verdict.FAIL, "accuracy 0.5 below the minimum 0.9"),
        (ACC, 0.5, 49, Verdict.INCONCLUSIVE, "too few labelled outcomes (49 < 50)"),
        (ACC, 0.99, 3, Verdict.INCONCLUSIVE, "too few labelled outcomes (3 < 50)"),
        (ACC, 0.99, None, Verdict.INCONCLUSIVE, "labelled outcome count unavailable"),
        (ACC, None, 0, Verdict.INCONCLUSIVE, "accuracy: no data"),
        (MAE, 2.5, 20, Verdict.FAIL, "mean-absolute-error 2.5 above the maximum 2"),
        (MAE, 1.0, 19, Verdict.INCONCLUSIVE, "too few labelled outcomes (19 < 20)"),
    ],
)
def test_few_labels_are_never_a_pass(metric, value, samples, verdict, message):
    judged = verdicts.gate_on_samples(verdicts.judge(metric, value), samples, metric.min_samples)
    assert judged.verdict is verdict
    assert message in judged.message


def test_spec_reads_min_samples_with_a_default():
    m = model(
        [
            {"name": "accuracy", "min": 0.8, "minSamples": 7},
            {"name": "mean-absolute-error", "max": 1},
        ]
    )
    acc, mae = m.strategy.analysis.metrics
    assert (acc.min_samples, mae.min_samples) == (7, spec.DEFAULT_MIN_SAMPLES)


class TestRun:
    async def test_worse_canary_fails_on_accuracy(self):
        provider = FakeProvider(
            {
                "feedback_correct_total": [({}, 0.6)],
                "feedback_outcomes_total": [({}, 80.0)],
                "modeldeploy_requests_total": [({}, 100.0)],
            }
        )
        result = await runner.run(
            model([{"name": "accuracy", "min": 0.9}]), Status.from_api(canary_status()), provider
        )
        (m,) = result.measurements
        assert m.verdict is Verdict.FAIL and m.value == 0.6
        assert result.first_failure is m

    async def test_no_labels_yet_is_inconclusive(self):
        provider = FakeProvider(
            {
                "feedback_absolute_error_total": [({}, 0.1)],
                "feedback_outcomes_total": [],
                "modeldeploy_requests_total": [({}, 100.0)],
            }
        )
        metrics = [{"name": "mean-absolute-error", "max": 1.0}]
        result = await runner.run(model(metrics), Status.from_api(canary_status()), provider)
        assert result.verdict is Verdict.INCONCLUSIVE
        assert "labelled outcome count unavailable" in result.measurements[0].message

    async def test_prometheus_error_on_the_count_is_inconclusive(self):
        provider = FakeProvider(
            {
                "feedback_correct_total": [({}, 0.99)],
                "feedback_outcomes_total": prometheus.ProviderError("Prometheus unreachable"),
                "modeldeploy_requests_total": [({}, 100.0)],
            }
        )
        result = await runner.run(
            model([{"name": "accuracy", "min": 0.9}]), Status.from_api(canary_status()), provider
        )
        assert result.verdict is Verdict.INCONCLUSIVE
        assert "unreachable" in result.measurements[0].message
