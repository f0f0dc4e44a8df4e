"""Verdicts, PSI, PromQL builders and an analysis run against a fake provider."""

from __future__ import annotations

import math
import socket

import pytest
from md_factories import md
from modeldeploy_operator import spec
from modeldeploy_operator.analysis import prometheus, psi, queries, runner, verdicts
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.status import Status

ERR = spec.MetricSpec("error-rate", max=0.01)
AGREE = spec.MetricSpec("shadow-agreement", min=0.95)


class TestJudge:
    @pytest.mark.parametrize(
        ("metric", "value", "verdict"),
        [
            (ERR, 0.0, Verdict.PASS),
            (ERR, 0.01, Verdict.PASS),
            (ERR, 0.02, Verdict.FAIL),
            (AGREE, 0.96, Verdict.PASS),
            (AGREE, 0.5, Verdict.FAIL),
            (spec.MetricSpec("x", min=1, max=2, query="q"), 3, Verdict.FAIL),
            (spec.MetricSpec("x", min=1, max=2, query="q"), 0, Verdict.FAIL),
            (ERR, None, Verdict.INCONCLUSIVE),
            (ERR, math.nan, Verdict.INCONCLUSIVE),
        ],
    )
    def test_thresholds(self, metric, value, verdict):
        assert verdicts.judge(metric, value).verdict is verdict

    def test_failure_message_names_metric_value_and_threshold(self):
        m = verdicts.judge(ERR, 0.125)
        assert m.message == "error-rate 0.125 above the maximum 0.01"
        assert m.threshold == "<= 0.01"

    def test_error_is_inconclusive_with_its_reason(self):
        m = verdicts.judge(ERR, None, error="Prometheus unreachable")
        assert m.verdict is Verdict.INCONCLUSIVE and m.message == "Prometheus unreachable"

    def test_overall(self):
        P, F, U = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE
        assert verdicts.overall([P, P]) is P
        assert verdicts.overall([P, U]) is U
        assert verdicts.overall([U, F]) is F
        assert verdicts.overall([]) is U

    @pytest.mark.parametrize("requests", [None, 0, 49])
    def test_too_few_requests_is_inconclusive_even_for_good_or_bad_values(self, requests):
        ms = [verdicts.judge(ERR, 0.0), verdicts.judge(AGREE, 0.1)]
        result = verdicts.gate_on_requests(ms, requests, 50)
        assert result.verdict is Verdict.INCONCLUSIVE
        why = "request count unavailable" if requests is None else "too few requests"
        assert all(why in m.message for m in result.measurements)

    def test_gating_keeps_the_first_reason_for_no_data(self):
        down = verdicts.judge(ERR, None, error="error-rate: Prometheus unreachable")
        result = verdicts.gate_on_requests([down], None, 50)
        assert result.measurements[0].message == "error-rate: Prometheus unreachable"

    def test_enough_requests_keeps_verdicts(self):
        ms = [verdicts.judge(ERR, 0.0), verdicts.judge(AGREE, 0.1)]
        result = verdicts.gate_on_requests(ms, 50, 50)
        assert result.verdict is Verdict.FAIL and result.first_failure.metric == "shadow-agreement"


class TestPsi:
    def test_identical_is_zero(self):
        assert psi.psi({"a": 10, "b": 30}, {"a": 1, "b": 3}) == pytest.approx(0.0)

    def test_known_value(self):
        # shares 0.5/0.5 vs 0.9/0.1: (0.4 ln 1.8) + (-0.4 ln 0.2)
        expected = 0.4 * math.log(1.8) + (-0.4) * math.log(0.2)
        assert psi.psi({"a": 5, "b": 5}, {"a": 9, "b": 1}) == pytest.approx(expected)

    def test_new_class_weighs_heavily(self):
        assert psi.psi({"a": 100}, {"a": 50, "b": 50}) > 2

    def test_empty_side_is_no_data(self):
        assert psi.psi({}, {"a": 1}) is None
        assert psi.psi({"a": 0}, {"a": 1}) is None

    def test_bins_from_cumulative(self):
        assert psi.bins_from_cumulative({0.5: 3, 1.0: 5, math.inf: 6}) == {
            "le=0.5": 3,
            "le=1": 2,
            "le=inf": 1,
        }


TARGET = queries.Target("ns", "fraud", "fraud-aaaa", "fraud-bbbb", "canary", "30s")


class TestQueries:
    def test_error_rate(self):
        sel = 'namespace="ns",revision="fraud-aaaa",endpoint!~".*(health|metrics|ready|live).*"'
        assert queries.error_rate(TARGET) == (
            f'(sum(increase(modeldeploy_requests_total{{{sel},code=~"5.."}}[30s])) or vector(0))'
            f" / sum(increase(modeldeploy_requests_total{{{sel}}}[30s]))"
        )

    def test_feature_drift_and_shadow(self):
        assert queries.feature_drift(TARGET) == (
            'max(modeldeploy_feature_drift_psi_max{namespace="ns",revision="fraud-aaaa"})'
        )
        assert 'shadow_revision="fraud-aaaa"' in queries.shadow_agreement(TARGET)
        assert "modeldeploy_router_shadow_agreements_total" in queries.shadow_agreement(TARGET)

    def test_latency_quantile(self):
        q = queries.latency_quantile(TARGET)
        assert q.startswith("histogram_quantile(0.99, sum by (le) (rate(")
        assert "modeldeploy_request_duration_seconds_bucket" in q

    def test_custom_template(self):
        template = 'avg(x{namespace="{namespace}",revision="{revision}",t="{track}"}[{interval}])'
        assert queries.custom(template, TARGET) == (
            'avg(x{namespace="ns",revision="fraud-aaaa",t="canary"}[30s])'
        )


class FakeProvider:
    """Answers queries by the first registered substring they contain."""

    def __init__(self, answers: dict[str, list | Exception]) -> None:
        self.answers = answers
        self.seen: list[str] = []

    async def run_query(self, query: str):
        self.seen.append(query)
        for needle, answer in self.answers.items():
            if needle in query:
                if isinstance(answer, Exception):
                    raise answer
                return answer
        return []


def canary_status():
    return {
        "stage": "Canary",
        "stable": {"revision": "fraud-bbbb"},
        "candidate": {"revision": "fraud-aaaa"},
    }


def model(metrics):
    return md(
        strategy={
            "type": "Canary",
            "canary": {"steps": [{"weight": 10}]},
            "analysis": {"interval": "30s", "minRequests": 50, "metrics": metrics},
        }
    )


class TestRunner:
    async def test_pass_with_enough_requests(self):
        provider = FakeProvider(
            {
                'code=~"5.."': [({}, 0.001)],
                "histogram_quantile": [({}, 0.1)],
                "modeldeploy_requests_total": [({}, 120.0)],
            }
        )
        m = model([{"name": "error-rate", "max": 0.01}, {"name": "latency-p99", "max": 0.25}])
        result = await runner.run(m, Status.from_api(canary_status()), provider)
        assert result.verdict is Verdict.PASS and result.requests == 120

    async def test_prometheus_down_is_inconclusive(self):
        err = prometheus.ProviderError("Prometheus unreachable at http://x")
        provider = FakeProvider({"": err})
        result = await runner.run(
            model([{"name": "error-rate", "max": 0.01}]), Status.from_api(canary_status()), provider
        )
        assert result.verdict is Verdict.INCONCLUSIVE
        assert result.requests is None

    async def test_prediction_drift_compares_candidate_with_stable(self):
        provider = FakeProvider(
            {
                'predicted_class_total{namespace="ns",revision="fraud-aaaa"': [
                    ({"class": "0"}, 90.0),
                    ({"class": "1"}, 10.0),
                ],
                'predicted_class_total{namespace="ns",revision="fraud-bbbb"': [
                    ({"class": "0"}, 50.0),
                    ({"class": "1"}, 50.0),
                ],
                "modeldeploy_requests_total": [({}, 100.0)],
            }
        )
        result = await runner.run(
            model([{"name": "prediction-drift", "max": 0.2}]),
            Status.from_api(canary_status()),
            provider,
        )
        (m,) = result.measurements
        assert m.value == pytest.approx(psi.psi({"0": 50, "1": 50}, {"0": 90, "1": 10}))
        assert m.verdict is Verdict.FAIL

    async def test_shadow_counts_router_comparisons_and_skips_nothing(self):
        provider = FakeProvider(
            {
                "agreements_total": [({}, 0.5)],
                "comparisons_total": [({}, 400.0)],
            }
        )
        status = canary_status() | {"stage": "Shadow"}
        result = await runner.run(
            model([{"name": "shadow-agreement", "min": 0.95}]), Status.from_api(status), provider
        )
        assert result.requests == 400 and result.verdict is Verdict.FAIL

    async def test_shadow_behind_a_gateway_counts_its_own_requests(self):
        provider = FakeProvider(
            {
                'code=~"5.."': [({}, 0.0)],
                "comparisons_total": [({}, 0.0)],  # nothing compares behind a Gateway
                'modeldeploy_requests_total{namespace="ns",revision="fraud-aaaa"': [({}, 80.0)],
            }
        )
        m = md(
            strategy={
                "type": "Shadow",
                "analysis": {"minRequests": 50, "metrics": [{"name": "error-rate", "max": 0.01}]},
            },
            traffic={"provider": "gatewayapi", "httpRoute": {"name": "web"}},
        )
        result = await runner.run(
            m, Status.from_api(canary_status() | {"stage": "Shadow"}), provider
        )
        assert result.requests == 80 and result.verdict is Verdict.PASS

    async def test_shadow_agreement_not_measured_outside_shadow(self):
        provider = FakeProvider({"modeldeploy_requests_total": [({}, 100.0)]})
        m = model([{"name": "shadow-agreement", "min": 0.95}, {"name": "error-rate", "max": 1}])
        result = await runner.run(m, Status.from_api(canary_status()), provider)
        assert [x.metric for x in result.measurements] == ["error-rate"]


class TestPrometheusClient:
    async def test_unreachable_raises_provider_error(self):
        with socket.socket() as s:  # a port that nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        client = prometheus.Prometheus(f"http://127.0.0.1:{port}", timeout=1)
        try:
            with pytest.raises(prometheus.ProviderError, match="unreachable"):
                await client.run_query("up")
        finally:
            await client.aclose()

    def test_parse_result(self):
        vector = {"resultType": "vector", "result": [{"metric": {"a": "b"}, "value": [1, "2.5"]}]}
        assert prometheus.parse_result(vector) == [({"a": "b"}, 2.5)]
        assert math.isnan(
            prometheus.parse_result({"resultType": "scalar", "result": [1, "NaN"]})[0][1]
        )
        assert prometheus.parse_result({"resultType": "vector", "result": []}) == []
