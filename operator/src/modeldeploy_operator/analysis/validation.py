"""Pre-traffic validation verdict (pure): the candidate and stable's answers on
the bundle's validation rows, against the labels and the spec's thresholds.

- agreement: share of rows where both predict the same class (classifiers);
  for regressors 1 - mean relative difference, clipped to [0, 1].
- accuracy vs labels: accuracy and macro F1 (classifiers), RMSE (regressors),
  for both; `accuracyDrop` is stable accuracy - candidate accuracy, or for
  regressors the relative RMSE increase (candidate - stable) / stable.
- latency: p50 / p99 of single-row and of batched requests for both;
  `latencyRatio` is the larger of the two p99 ratios candidate / stable.

Missing data is never a pass: a threshold on something that could not be
computed (no labels, no latency samples) fails, naming what was missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Thresholds:
    min_agreement: float | None = None
    max_accuracy_drop: float | None = None
    max_latency_ratio: float | None = None


@dataclass(frozen=True)
class Answers:
    """One revision's predictions for every validation row, and request latencies."""

    predictions: Sequence[Any]
    single_seconds: Sequence[float] = ()
    batch_seconds: Sequence[float] = ()


@dataclass(frozen=True)
class Report:
    metrics: dict[str, float | None]
    failures: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def message(self) -> str:
        if self.failures:
            return "; ".join(self.failures)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in self.metrics.items() if v is not None)
        return f"validation passed: {shown}"


def is_regression(predictions: Sequence[Any]) -> bool:
    """Regressors answer floats; classifiers answer their class labels."""
    return bool(predictions) and all(isinstance(p, float) for p in predictions)


def quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def agreement(candidate: Sequence[Any], stable: Sequence[Any], regression: bool) -> float:
    if regression:
        rel = [
            abs(c - s) / max(abs(s), 1e-12) if s != c else 0.0
            for c, s in zip(candidate, stable, strict=True)
        ]
        return max(0.0, 1.0 - sum(rel) / len(rel))
    return sum(c == s for c, s in zip(candidate, stable, strict=True)) / len(candidate)


def accuracy(labels: Sequence[Any], predictions: Sequence[Any]) -> float:
    return sum(y == p for y, p in zip(labels, predictions, strict=True)) / len(labels)


def f1_macro(labels: Sequence[Any], predictions: Sequence[Any]) -> float:
    """Unweighted mean of per-class F1 over the classes seen in labels or predictions."""
    scores = []
    for cls in {*labels, *predictions}:
        tp = sum(y == cls and p == cls for y, p in zip(labels, predictions, strict=True))
        fp = sum(y != cls and p == cls for y, p in zip(labels, predictions, strict=True))
        fn = sum(y == cls and p != cls for y, p in zip(labels, predictions, strict=True))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def rmse(labels: Sequence[float], predictions: Sequence[float]) -> float:
    errors = [(y - p) ** 2 for y, p in zip(labels, predictions, strict=True)]
    return math.sqrt(sum(errors) / len(errors))


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def judge(
    candidate: Answers,
    stable: Answers,
    labels: Sequence[Any] | None,
    limits: Thresholds,
) -> Report:
    regression = is_regression(candidate.predictions)
    m: dict[str, float | None] = {
        "rows": float(len(candidate.predictions)),
        "agreement": agreement(candidate.predictions, stable.predictions, regression),
    }
    drop: float | None = None
    if labels:
        if regression:
            m["candidateRmse"] = cand = rmse(labels, candidate.predictions)
            m["stableRmse"] = base = rmse(labels, stable.predictions)
            drop = (cand - base) / base if base else cand
        else:
            m["candidateAccuracy"] = cand = accuracy(labels, candidate.predictions)
            m["stableAccuracy"] = base = accuracy(labels, stable.predictions)
            m["candidateF1"] = f1_macro(labels, candidate.predictions)
            m["stableF1"] = f1_macro(labels, stable.predictions)
            drop = base - cand
    m["accuracyDrop"] = drop
    for who, answers in (("candidate", candidate), ("stable", stable)):
        m[f"{who}P50"] = quantile(answers.single_seconds, 0.5)
        m[f"{who}P99"] = quantile(answers.single_seconds, 0.99)
        m[f"{who}BatchP99"] = quantile(answers.batch_seconds, 0.99)
    ratios = [
        r
        for r in (
            _ratio(m["candidateP99"], m["stableP99"]),
            _ratio(m["candidateBatchP99"], m["stableBatchP99"]),
        )
        if r is not None
    ]
    m["latencyRatio"] = max(ratios) if ratios else None
    return Report(m, tuple(_failures(m, limits, labels_present=bool(labels))))


def _failures(m: dict[str, float | None], limits: Thresholds, *, labels_present: bool):
    agree = m["agreement"]
    if limits.min_agreement is not None and agree is not None and agree < limits.min_agreement:
        yield f"agreement {agree:.4g} below the minimum {limits.min_agreement:g}"
    if limits.max_accuracy_drop is not None:
        drop = m["accuracyDrop"]
        if not labels_present:
            yield "accuracyDrop: the validation set has no labels (maxAccuracyDrop needs them)"
        elif drop is not None and drop > limits.max_accuracy_drop:
            yield f"accuracyDrop {drop:.4g} above the maximum {limits.max_accuracy_drop:g}"
    if limits.max_latency_ratio is not None:
        ratio = m["latencyRatio"]
        if ratio is None:
            yield "latencyRatio: no latency samples (maxLatencyRatio needs them)"
        elif ratio > limits.max_latency_ratio:
            yield f"latencyRatio {ratio:.4g} above the maximum {limits.max_latency_ratio:g}"
