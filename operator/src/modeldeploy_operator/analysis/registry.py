"""The builtin analysis metrics, defined once: name, query, direction, typical bound.

The runner takes each builtin's query from here; the CRD's CEL rule (which
names need no query) and the README's metric table are checked against this
registry by tests/operator/test_metric_registry.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from modeldeploy_operator.analysis import queries


@dataclass(frozen=True)
class BuiltinMetric:
    name: str
    what: str
    # "max": bad when high (rates, latency, drift); "min": bad when low (agreement).
    direction: Literal["min", "max"]
    typical: float  # the bound the docs suggest
    # One PromQL number; None when the runner computes it from several queries.
    query: Callable[[queries.Target], str] | None
    shadow_only: bool = False  # only measured while the candidate is a shadow
    # Judged on ground-truth outcomes (POST .../feedback), gated on their own count.
    feedback: bool = False


_ALL = (
    BuiltinMetric(
        "error-rate", "5xx share of the candidate's requests", "max", 0.01, queries.error_rate
    ),
    BuiltinMetric(
        "latency-p99",
        "p99 of the candidate's request duration, seconds",
        "max",
        0.25,
        queries.latency_quantile,
    ),
    BuiltinMetric(
        "feature-drift",
        "max over features of the PSI between live inputs and the bundle's training reference",
        "max",
        0.2,
        queries.feature_drift,
    ),
    BuiltinMetric(
        "prediction-drift",
        "PSI of candidate vs stable prediction distributions",
        "max",
        0.2,
        None,  # runner._prediction_drift: classes, or value buckets for regressors
    ),
    BuiltinMetric(
        "shadow-agreement",
        "share of mirrored rows where shadow and stable agree",
        "min",
        0.95,
        queries.shadow_agreement,
        shadow_only=True,
    ),
    BuiltinMetric(
        "accuracy",
        "share of labelled outcomes the candidate predicted right",
        "min",
        0.9,
        queries.accuracy,
        feedback=True,
    ),
    BuiltinMetric(
        "mean-absolute-error",
        "mean |prediction - outcome| over the candidate's labelled outcomes",
        "max",
        1.0,
        queries.mean_absolute_error,
        feedback=True,
    ),
)
BUILTIN: dict[str, BuiltinMetric] = {m.name: m for m in _ALL}


def names() -> tuple[str, ...]:
    return tuple(BUILTIN)
