"""The operator's own Prometheus metrics (`modeldeploy_operator_*`).

Defined in one place so that `/metrics`, the Grafana dashboard and the alert
rules agree on names; callers only increment them.
"""

from __future__ import annotations

from collections import Counter as _Tally
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram


class Measured(Protocol):
    """What count_measurements reads of a verdicts.Measurement (no import cycle)."""

    @property
    def metric(self) -> str: ...
    @property
    def verdict(self) -> object: ...
    @property
    def dry_run(self) -> bool: ...


INFO = Gauge(
    "modeldeploy_operator_info",
    "Always 1 while an operator replica runs (active or standing by), by version",
    ["version"],
)
ROLLOUTS = Gauge(
    "modeldeploy_operator_rollouts",
    "ModelDeployments by phase, as last seen by this operator",
    ["phase"],
)
PAUSED_ROLLOUTS = Gauge(
    "modeldeploy_operator_paused_rollouts",
    "ModelDeployments in phase Paused, by status.paused.reason",
    ["reason"],
)
TRANSITIONS = Counter(
    "modeldeploy_operator_transitions_total",
    "Rollout transitions (one per Event the state machine emitted)",
    ["reason"],
)
ROLLBACKS = Counter("modeldeploy_operator_rollbacks_total", "Rollbacks by reason", ["reason"])
VERDICTS = Counter(
    "modeldeploy_operator_analysis_verdicts_total",
    "Analysis runs by overall verdict",
    ["verdict"],
)
MEASUREMENTS = Counter(
    "modeldeploy_operator_measurements_total",
    "Metric measurements by metric, verdict and dry run (true: shown, never counted)",
    ["metric", "verdict", "dry_run"],
)
WEBHOOK_CALLS = Counter(
    "modeldeploy_operator_webhook_calls_total",
    "Webhook and notification deliveries by type and result (ok, failed, dropped)",
    ["type", "result"],
)
VALIDATIONS = Counter(
    "modeldeploy_operator_validations_total",
    "Pre-traffic validations of candidates by result (passed, failed)",
    ["result"],
)
LOADGEN_REQUESTS = Counter(
    "modeldeploy_operator_loadgen_requests_total",
    "Requests the built-in load generator sent to candidates, by result (ok, error)",
    ["result"],
)
RECONCILE_SECONDS = Histogram(
    "modeldeploy_operator_reconcile_duration_seconds",
    "Time of one reconcile (observations, analysis, status write, children)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PROMETHEUS_QUERY_SECONDS = Histogram(
    "modeldeploy_operator_prometheus_query_duration_seconds",
    "Time of one Prometheus query",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PROMETHEUS_QUERIES = Counter(
    "modeldeploy_operator_prometheus_queries_total",
    "Prometheus queries by result (ok, error, unreachable)",
    ["result"],
)
RECONCILE_ERRORS = Counter(
    "modeldeploy_operator_reconcile_errors_total", "Reconciles that raised", ["kind"]
)


def version() -> str:
    try:
        return metadata.version("modeldeploy-operator")
    except metadata.PackageNotFoundError:  # run from a source tree without install
        return "unknown"


def export_info() -> None:
    """Called once at start-up, before the operator knows whether it is the active peer,
    so that `absent(modeldeploy_operator_info)` means no replica runs at all."""
    INFO.labels(version=version()).set(1)


def tally(values: Iterable[str], known: Iterable[str]) -> dict[str, int]:
    """Count values by label; every known label is present (0 when unseen) so that
    its series falls to 0 instead of keeping the last count or never appearing."""
    counts = dict.fromkeys(known, 0)
    counts.update(_Tally(values))
    return counts


def set_counts(gauge: Gauge, label: str, counts: Mapping[str, int]) -> None:
    # Clear first: a label that is gone (an unknown reason) must not keep its last
    # count. Scrapes run on the same event loop, so they never see the gap.
    gauge.clear()
    for value, count in counts.items():
        gauge.labels(**{label: value}).set(count)


def count_measurements(measurements: Iterable[Measured]) -> None:
    """One increment per measured metric, dry-run ones apart (`dry_run="true"`)."""
    for m in measurements:
        MEASUREMENTS.labels(
            metric=m.metric, verdict=str(m.verdict), dry_run=str(m.dry_run).lower()
        ).inc()


def count_validation(passed: bool) -> None:
    # Process-wide like every operator series; the values are in status.validation.
    VALIDATIONS.labels(result="passed" if passed else "failed").inc()
