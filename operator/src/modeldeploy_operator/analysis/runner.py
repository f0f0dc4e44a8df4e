"""One analysis run: query every configured metric and judge it.

I/O goes through a `MetricProvider`; every failure to get a number becomes an
inconclusive measurement carrying the reason, never an exception and never a
pass. The request count gates the whole run (see `verdicts.gate_on_requests`).
"""

from __future__ import annotations

import math

from modeldeploy_operator import spec
from modeldeploy_operator.analysis import psi, queries, registry, verdicts
from modeldeploy_operator.analysis.prometheus import MetricProvider, ProviderError, Sample
from modeldeploy_operator.status import Status


def target(md: spec.ModelDeployment, status: Status) -> queries.Target:
    return queries.Target(
        namespace=md.namespace,
        name=md.name,
        revision=status.candidate.revision if status.candidate else "",
        stable_revision=status.stable.revision if status.stable else "",
        track="shadow" if status.stage == spec.Stage.SHADOW else "canary",
        interval=spec.format_promql_duration(md.strategy.analysis.interval),
    )


def applicable(metric: spec.MetricSpec, t: queries.Target) -> bool:
    """A shadow-only builtin (shadow agreement) exists only while the candidate is a shadow."""
    builtin = registry.BUILTIN.get(metric.name)
    return builtin is None or not builtin.shadow_only or t.track == "shadow"


async def run(
    md: spec.ModelDeployment, status: Status, provider: MetricProvider
) -> verdicts.AnalysisResult:
    t = target(md, status)
    measurements = [
        await _measure(metric, t, provider)
        for metric in md.strategy.analysis.metrics
        if applicable(metric, t)
    ]
    # In shadow the builtin router counts the requests it compared; behind a
    # Gateway nothing compares, so the shadow's own (mirrored) requests count.
    compared = t.track == "shadow" and md.traffic.provider == "builtin"
    count_query = queries.shadow_comparisons(t) if compared else queries.requests(t)
    try:
        requests = await _scalar(provider, count_query)
    except ProviderError:
        requests = None
    count = None if requests is None else int(requests)
    return verdicts.gate_on_requests(measurements, count, md.strategy.analysis.min_requests)


async def _measure(
    metric: spec.MetricSpec, t: queries.Target, provider: MetricProvider
) -> verdicts.Measurement:
    try:
        if metric.query is None and registry.BUILTIN[metric.name].query is None:
            value = await _prediction_drift(t, provider)
        else:
            value = await _scalar(provider, query_for(metric, t))
        measurement = verdicts.judge(metric, value)
        if metric.query is None and registry.BUILTIN[metric.name].feedback:
            samples = await _scalar(provider, queries.labelled_outcomes(t))
            count = None if samples is None else int(samples)
            measurement = verdicts.gate_on_samples(measurement, count, metric.min_samples)
    except ProviderError as exc:
        return verdicts.judge(metric, None, error=f"{metric.name}: {exc}")
    return measurement


def query_for(metric: spec.MetricSpec, t: queries.Target) -> str:
    if metric.query is not None:
        return queries.custom(metric.query, t)
    build = registry.BUILTIN[metric.name].query
    assert build is not None, f"{metric.name} is computed, not one query"
    return build(t)


async def _scalar(provider: MetricProvider, query: str) -> float | None:
    """The single number a query returns; None for no samples or NaN."""
    samples = await provider.run_query(query)
    if not samples:
        return None
    value = samples[0][1]
    return None if math.isnan(value) or math.isinf(value) else value


async def _prediction_drift(t: queries.Target, provider: MetricProvider) -> float | None:
    """PSI of candidate vs stable predicted classes (or prediction buckets)."""
    cand = _by_label(await provider.run_query(queries.predicted_classes(t, t.revision)), "class")
    stable = _by_label(
        await provider.run_query(queries.predicted_classes(t, t.stable_revision)), "class"
    )
    if not cand and not stable:  # a regressor: compare prediction-value histograms
        cand = psi.bins_from_cumulative(
            _buckets(await provider.run_query(queries.prediction_buckets(t, t.revision)))
        )
        stable = psi.bins_from_cumulative(
            _buckets(await provider.run_query(queries.prediction_buckets(t, t.stable_revision)))
        )
    return psi.psi(stable, cand)


def _by_label(samples: list[Sample], label: str) -> dict[str, float]:
    return {s[0].get(label, ""): s[1] for s in samples if not math.isnan(s[1])}


def _buckets(samples: list[Sample]) -> dict[float, float]:
    out = {}
    for labels, value in samples:
        if "le" in labels and not math.isnan(value):
            out[float(labels["le"])] = value
    return out
