"""The router's Prometheus metrics (names and labels from docs/contracts.md).

A registry of its own keeps the exposition to the router's series. Label
children are cached: `labels()` is a measurable cost per request.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from modeldeploy_router import routing

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
DIFF_BUCKETS = (0.0, 1e-6, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 100.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST
SHADOW_LABELS = ("model", "primary_version", "shadow_version", "shadow_revision")


SHADOW_TRACK_LABELS = ("model", "shadow_version", "shadow_revision")
TRACK_LABELS = ("model", "track", "version", "revision")

# attribute, type, name, help, labels, histogram buckets
SPECS: tuple[tuple[str, type, str, str, tuple[str, ...], tuple | None], ...] = (
    ("requests", Counter, "modeldeploy_router_requests_total",
     "Requests answered, by track and status code", (*TRACK_LABELS, "code"), None),
    ("upstream_duration", Histogram, "modeldeploy_router_upstream_duration_seconds",
     "Time from sending the request upstream to having its whole response",
     TRACK_LABELS, LATENCY_BUCKETS),
    ("overhead", Histogram, "modeldeploy_router_overhead_seconds",
     "Time the router adds: total handling time minus upstream time", ("model",),
     OVERHEAD_BUCKETS),
    ("canary_weight", Gauge, "modeldeploy_router_canary_weight",
     "Current canary weight (0-100)", ("model",), None),
    ("mirror_percent", Gauge, "modeldeploy_router_mirror_percent",
     "Current share mirrored to shadow (0-100)", ("model",), None),
    ("mirror", Counter, "modeldeploy_router_mirror_total",
     "Copies for the shadow track by result (sent, dropped, error)", ("model", "result"), None),
    ("comparisons", Counter, "modeldeploy_router_shadow_comparisons_total",
     "Rows whose shadow prediction was compared with the primary's", SHADOW_LABELS, None),
    ("agreements", Counter, "modeldeploy_router_shadow_agreements_total",
     "Compared rows where shadow and primary agree", SHADOW_LABELS, None),
    ("abs_diff", Histogram, "modeldeploy_router_shadow_abs_diff",
     "Absolute difference shadow - primary per row (regressors)", SHADOW_LABELS, DIFF_BUCKETS),
    ("rel_diff", Histogram, "modeldeploy_router_shadow_rel_diff",
     "Relative difference |shadow - primary| / |primary| per row (regressors)",
     SHADOW_LABELS, DIFF_BUCKETS),
    ("shadow_errors", Counter, "modeldeploy_router_shadow_errors_total",
     "Shadow requests that failed or returned unreadable predictions",
     SHADOW_TRACK_LABELS, None),
    ("shadow_duration", Histogram, "modeldeploy_router_shadow_duration_seconds",
     "Shadow upstream latency", SHADOW_TRACK_LABELS, LATENCY_BUCKETS),
    ("endpoints", Gauge, "modeldeploy_router_endpoints",
     "Ready endpoints per track", ("model", "track"), None),
    ("fallback", Counter, "modeldeploy_router_fallback_total",
     "Requests sent to track `to` because `track` had no ready endpoint or refused "
     "the connection", ("model", "track", "to"), None),
    ("feedback", Counter, "modeldeploy_router_feedback_outcomes_total",
     "Ground-truth outcomes by result (recorded, unknown: no pod knew the request id, "
     "invalid)", ("model", "result"), None),
    ("feedback_errors", Counter, "modeldeploy_router_feedback_errors_total",
     "Feedback requests a pod failed to answer (its outcomes may show as unknown)",
     ("model", "track"), None),
    ("feedback_requests", Counter, "modeldeploy_router_feedback_requests_total",
     "Feedback requests by status code", ("model", "code"), None),
)  # fmt: skip


# The series the shadow path writes (in the shadow process when it runs apart).
SHADOW_ATTRS = frozenset(
    {"mirror", "comparisons", "agreements", "abs_diff", "rel_diff", "shadow_errors",
     "shadow_duration"}
)  # fmt: skip


class RouterMetrics:
    """The metrics in SPECS as attributes (e.g. `self.mirror`).

    `part` picks a subset: ALL, PRIMARY (everything but SHADOW_ATTRS: the
    router when its shadow path runs in a child process) or SHADOW (the child).
    """

    ALL, PRIMARY, SHADOW = "all", "primary", "shadow"
    # The attributes SPECS sets (one per metric; a part leaves some unset).
    requests: Counter
    upstream_duration: Histogram
    overhead: Histogram
    canary_weight: Gauge
    mirror_percent: Gauge
    mirror: Counter
    comparisons: Counter
    agreements: Counter
    abs_diff: Histogram
    rel_diff: Histogram
    shadow_errors: Counter
    shadow_duration: Histogram
    fallback: Counter
    endpoints: Gauge
    feedback: Counter
    feedback_errors: Counter
    feedback_requests: Counter

    def __init__(self, part: str = ALL) -> None:
        self.registry = CollectorRegistry()
        for attr, kind, name, doc, labels, buckets in SPECS:
            if part != self.ALL and (attr in SHADOW_ATTRS) != (part == self.SHADOW):
                continue
            extra = {"buckets": buckets} if buckets else {}
            setattr(self, attr, kind(name, doc, list(labels), registry=self.registry, **extra))
        self._cache: dict[tuple, Any] = {}

    def _child(self, metric, *values: str):
        key = (id(metric), values)
        child = self._cache.get(key)
        if child is None:
            child = metric.labels(*values)
            self._cache[key] = child
        return child

    def observe_request(self, model: str, track: routing.Track | None, code: int) -> None:
        """A request answered by the router itself (no upstream response)."""
        labels = (
            (model, track.name, track.version, track.revision) if track else (model, "", "", "")
        )
        self._child(self.requests, *labels, str(code)).inc()

    def observe_answer(
        self, model: str, track: routing.Track, code: int, upstream_s: float, overhead_s: float
    ) -> None:
        """A forwarded request and its upstream response."""
        labels = (model, track.name, track.version, track.revision)
        self._child(self.requests, *labels, str(code)).inc()
        self._child(self.upstream_duration, *labels).observe(upstream_s)
        self._child(self.overhead, model).observe(max(overhead_s, 0.0))

    def mirror_result(self, model: str, result: str) -> None:
        self._child(self.mirror, model, result).inc()

    def fell_back(self, model: str, track: str, to: str) -> None:
        self._child(self.fallback, model, track, to).inc()

    def feedback_answered(self, model: str, code: int, outcomes: Any, errors: Any) -> None:
        self._child(self.feedback_requests, model, str(code)).inc()
        for outcome in outcomes:
            self._child(self.feedback, model, str(outcome.get("result"))).inc()
        for error in errors:
            self._child(self.feedback_errors, model, str(error.get("track", ""))).inc()

    def shadow_child(self, metric, model: str, primary: str, shadow: routing.Track):
        return self._child(metric, model, primary, shadow.version, shadow.revision)

    def shadow_track_child(self, metric, model: str, shadow: routing.Track):
        return self._child(metric, model, shadow.version, shadow.revision)

    def set_table(self, table: routing.RoutingTable) -> None:
        """Gauges that mirror the current routing table."""
        self.canary_weight.labels(table.model).set(table.canary_weight)
        self.mirror_percent.labels(table.model).set(table.mirror_percent)
        for name in routing.TRACKS:
            track = table.tracks.get(name)
            self.endpoints.labels(table.model, name).set(len(track.pool) if track else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
