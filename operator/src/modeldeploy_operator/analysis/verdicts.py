"""Pure verdicts: a measured number (or its absence) against a threshold.

Missing data is never success. A value that is None or NaN, a query that
failed, or an interval with fewer requests than required is *inconclusive*;
the state machine counts those separately from failures.

A dry-run metric (`dryRun: true`) is judged the same way and shown, but its
verdict never enters the run's verdict: a team can try a new gate (a tighter
drift bound) on real rollouts without letting it pause or roll them back.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from modeldeploy_operator import spec


class Verdict(enum.StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class Measurement:
    metric: str
    value: float | None
    threshold: str
    verdict: Verdict
    message: str
    dry_run: bool = False

    def to_status(self, time: str) -> dict[str, object]:
        out: dict[str, object] = {
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "verdict": str(self.verdict),
            "message": self.message,
            "time": time,
        }
        if self.dry_run:
            out["dryRun"] = True
        return out


@dataclass(frozen=True)
class AnalysisResult:
    """One analysis run over one interval: every metric plus the request count."""

    measurements: tuple[Measurement, ...]
    requests: int | None  # candidate requests (or shadow comparisons) in the interval

    @property
    def counted(self) -> tuple[Measurement, ...]:
        """The measurements that decide: every one except the dry-run ones."""
        return tuple(m for m in self.measurements if not m.dry_run)

    @property
    def verdict(self) -> Verdict:
        return overall([m.verdict for m in self.counted])

    @property
    def first_failure(self) -> Measurement | None:
        return next((m for m in self.counted if m.verdict is Verdict.FAIL), None)

    @property
    def first_inconclusive(self) -> Measurement | None:
        return next((m for m in self.counted if m.verdict is Verdict.INCONCLUSIVE), None)

    @property
    def dry_run_failures(self) -> tuple[Measurement, ...]:
        """Dry-run metrics that would have failed the run (shown, not counted)."""
        return tuple(m for m in self.measurements if m.dry_run and m.verdict is Verdict.FAIL)


def overall(verdicts: Sequence[Verdict]) -> Verdict:
    """Any failure fails; otherwise any inconclusive is inconclusive; none at all is too."""
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if not verdicts or Verdict.INCONCLUSIVE in verdicts:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


def judge(metric: spec.MetricSpec, value: float | None, *, error: str | None = None) -> Measurement:
    """Verdict of one metric value against its min/max."""
    measurement = _judge(metric, value, error)
    return replace(measurement, dry_run=True) if metric.dry_run else measurement


def _judge(metric: spec.MetricSpec, value: float | None, error: str | None) -> Measurement:
    threshold = metric.threshold_text
    if error is not None:
        return Measurement(metric.name, None, threshold, Verdict.INCONCLUSIVE, error)
    if value is None or math.isnan(value):
        return Measurement(
            metric.name, None, threshold, Verdict.INCONCLUSIVE, f"{metric.name}: no data"
        )
    if metric.max is not None and value > metric.max:
        return Measurement(
            metric.name,
            value,
            threshold,
            Verdict.FAIL,
            f"{metric.name} {value:.4g} above the maximum {metric.max:g}",
        )
    if metric.min is not None and value < metric.min:
        return Measurement(
            metric.name,
            value,
            threshold,
            Verdict.FAIL,
            f"{metric.name} {value:.4g} below the minimum {metric.min:g}",
        )
    return Measurement(
        metric.name, value, threshold, Verdict.PASS, f"{metric.name} {value:.4g} within {threshold}"
    )


def gate_on_samples(measurement: Measurement, samples: int | None, min_samples: int) -> Measurement:
    """A feedback metric over fewer labelled outcomes than asked is inconclusive,
    whatever its value: a handful of labels is never a pass (nor a failure)."""
    if measurement.verdict is Verdict.INCONCLUSIVE and measurement.value is None:
        return measurement  # keep the first reason (no data, Prometheus down)
    if samples is not None and samples >= min_samples:
        return measurement
    why = (
        "labelled outcome count unavailable"
        if samples is None
        else f"too few labelled outcomes ({samples} < {min_samples})"
    )
    return replace(
        measurement, verdict=Verdict.INCONCLUSIVE, message=f"{why} for {measurement.metric}"
    )


def gate_on_requests(
    result_measurements: Sequence[Measurement], requests: int | None, min_requests: int
) -> AnalysisResult:
    """Turn every verdict inconclusive when the interval saw too few requests.

    Failures too: a rate over a handful of requests says little either way,
    and the user asked for a minimum sample before any judgement.
    """
    if requests is not None and requests >= min_requests:
        return AnalysisResult(tuple(result_measurements), requests)
    why = (
        "request count unavailable"
        if requests is None
        else f"too few requests ({requests} < {min_requests})"
    )
    gated = tuple(
        m
        if m.verdict is Verdict.INCONCLUSIVE  # keep the first reason (e.g. Prometheus down)
        else replace(m, verdict=Verdict.INCONCLUSIVE, message=f"{why} for {m.metric}")
        for m in result_measurements
    )
    return AnalysisResult(gated, requests)
