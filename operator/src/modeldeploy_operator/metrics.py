"""The operator's own Prometheus metrics (`modeldeploy_operator_*`).

Defined in one place so that `/metrics`, the Grafana dashboard and the alert
rules agree on names; callers only increment them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROLLOUTS = Gauge(
    "modeldeploy_operator_rollouts",
    "ModelDeployments by phase, as last seen by this operator",
    ["phase"],
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
