"""Prometheus metrics of one predictor process (names: docs/contracts.md).

Every series carries ``model``, ``version``, ``track`` and ``revision`` so the
operator can compare tracks and pick a revision. The constant labels are bound
once (``labels(...)`` children are cached) so the request path only does an
increment or an observe.

Per-row work (predicted class counts, the prediction histogram, drift) is
queued by the data plane and folded in by :meth:`Metrics.refresh`, which runs
on scrape and on a timer, never inside a request.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from .drift import FOLD_ROWS, DriftWindow

disable_created_metrics()  # *_created series only add scrape weight here

BASE_LABELS = ("model", "version", "track", "revision")
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Request series present at 0 from the start (endpoints of server/endpoints.py,
# the codes the analysis judges): increase() only sees a rise between two
# samples of one series, so a 5xx series born with the first failures would
# hide them from the operator's error-rate until it has been scraped twice.
INFERENCE_ENDPOINTS = ("predict", "v1_predict", "v2_infer")
COUNTED_CODES = ("200", "500", "503")


class Metrics:
    def __init__(
        self,
        base: dict[str, str],
        window: DriftWindow,
        feature_names: list[str],
        prediction_buckets: list[float] | None = None,
        categorical: list[str] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.base = base
        self.window = window
        self.feature_names = feature_names
        m = self._metric
        self._requests = m(
            Counter, "requests", "Requests by endpoint and HTTP status", "endpoint", "code"
        )
        for endpoint in INFERENCE_ENDPOINTS:
            for code in COUNTED_CODES:
                self._requests.labels(**self.base, endpoint=endpoint, code=code)
        self._duration = m(
            Histogram,
            "request_duration_seconds",
            "Request latency",
            "endpoint",
            buckets=LATENCY_BUCKETS,
        )
        self._batch = m(Histogram, "batch_size", "Rows per predict call", buckets=BATCH_BUCKETS)
        self._rows = m(Counter, "predicted_rows", "Rows predicted")
        self._input_errors = m(Counter, "input_errors", "Rejected requests by reason", "reason")
        self._model_errors = m(Counter, "model_errors", "Exceptions raised by the model", "error")
        self._classes = m(Counter, "predicted_class", "Predicted classes (classifiers)", "class")
        self._values = None
        if prediction_buckets is not None:  # regressors: the reference deciles as buckets
            buckets = sorted({float(b) for b in prediction_buckets if math.isfinite(b)})
            self._values = m(
                Histogram, "prediction_value", "Predicted values", buckets=[*buckets, math.inf]
            )
        self._feature_psi = m(Gauge, "feature_drift_psi", "PSI per feature vs reference", "feature")
        self._feature_psi_max = m(Gauge, "feature_drift_psi_max", "Largest feature PSI")
        self._missing_share = m(
            Gauge, "feature_missing_share", "Share of missing values per feature", "feature"
        )
        self._unseen_share = m(
            Gauge,
            "feature_unseen_share",
            "Share of categories the reference never had, per feature",
            "feature",
        )
        self._unseen_total = m(
            Counter,
            "unseen_categories",
            "Values of a categorical feature that the reference never had",
            "feature",
        )
        self._unseen_reported = np.zeros(len(feature_names), dtype=np.int64)
        for name in categorical or []:  # present at 0 from the start, so rate() works
            self._unseen_total.labels(**self.base, feature=name)
        self._prediction_psi = m(Gauge, "prediction_drift_psi", "PSI of predictions vs reference")
        self._window_rows = m(Gauge, "drift_window_rows", "Rows in the drift window")
        self._info = m(Gauge, "model_info", "Served model (1)", "digest", "sklearn_version")
        self._load = m(Gauge, "model_load_seconds", "Time to fetch and load the bundle")
        self.log_dropped = m(Counter, "prediction_log_dropped", "Prediction log records dropped")
        # Ground-truth feedback (feedback.py): present at 0 from the start, so increase() works.
        self._outcomes = m(
            Counter, "feedback_outcomes", "Labelled rows judged against a prediction"
        )
        self._correct = m(
            Counter, "feedback_correct", "Labelled rows predicted right (classifiers)"
        )
        self._abs_error = m(
            Counter, "feedback_absolute_error", "Sum of |prediction - true value| (regressors)"
        )
        self._forgotten = m(
            Counter,
            "feedback_forgotten",
            "Predictions dropped from the feedback memory unjudged, by reason",
            "reason",
        )
        self.feedback_memory = m(Gauge, "feedback_memory_ids", "Request ids kept for feedback")
        self._children: dict[tuple, Any] = {}
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        # Large requests are predicted (and counted) in a worker thread, beside the loop.
        self._lock = threading.Lock()

    def _metric(self, kind: type, name: str, doc: str, *extra: str, **kwargs: Any) -> Any:
        """A metric with the base labels; without extra labels, its one bound child."""
        metric = kind(
            "modeldeploy_" + name, doc, [*BASE_LABELS, *extra], registry=self.registry, **kwargs
        )
        return metric if extra else metric.labels(**self.base)

    def model_info(self, digest: str, sklearn_version: str, load_seconds: float) -> None:
        self._info.labels(**self.base, digest=digest, sklearn_version=sklearn_version).set(1)
        self._load.set(load_seconds)

    def request(self, endpoint: str, code: int, seconds: float) -> None:
        key = (endpoint, code)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = (
                self._requests.labels(**self.base, endpoint=endpoint, code=str(code)),
                self._duration.labels(**self.base, endpoint=endpoint),
            )
        child[0].inc()
        child[1].observe(seconds)

    def input_error(self, reason: str) -> None:
        self._input_errors.labels(**self.base, reason=reason).inc()

    def model_error(self, error: str) -> None:
        self._model_errors.labels(**self.base, error=error).inc()

    def outcome(self, rows: int, correct: int, abs_error: float) -> None:
        self._outcomes.inc(rows)
        self._correct.inc(correct)
        self._abs_error.inc(abs_error)

    def forgotten(self, reason: str, count: int) -> None:
        self._forgotten.labels(**self.base, reason=reason).inc(count)

    def batch(self, requests: int, rows: int) -> None:
        self._batch.observe(rows)
        self._rows.inc(rows)

    def predictions(self, x: Any, pred: np.ndarray) -> None:
        """Queue a prediction for the scrape-time fold (O(1) on the request path)."""
        with self._lock:
            self._pending.append(pred)
            self._pending_rows += pred.shape[0]
            if self._pending_rows >= FOLD_ROWS:
                self._fold_predictions()
            self.window.add(x, pred)

    def refresh(self) -> None:
        """Fold queued predictions into counters and recompute drift gauges."""
        with self._lock:
            self._fold_predictions()
        psis = self.window.feature_psi()
        for name, value in zip(self.feature_names, psis, strict=True):
            self._feature_psi.labels(**self.base, feature=name).set(value)
        finite = [v for v in psis if not math.isnan(v)]
        self._feature_psi_max.set(max(finite) if finite else math.nan)
        for name, missing, unseen in zip(
            self.feature_names,
            self.window.missing_shares(),
            self.window.unseen_shares(),
            strict=True,
        ):
            self._missing_share.labels(**self.base, feature=name).set(missing)
            self._unseen_share.labels(**self.base, feature=name).set(unseen)
        new = self.window.unseen_total - self._unseen_reported
        for j in np.flatnonzero(new):
            self._unseen_total.labels(**self.base, feature=self.feature_names[j]).inc(int(new[j]))
        self._unseen_reported = self.window.unseen_total.copy()
        self._prediction_psi.set(self.window.prediction_psi())
        self._window_rows.set(self.window.rows)

    def _fold_predictions(self) -> None:
        if not self._pending:
            return
        pred = np.concatenate(self._pending)
        self._pending.clear()
        self._pending_rows = 0
        if self._values is not None:
            for value in pred.astype(float).tolist():
                self._values.observe(value)
        else:
            for cls, count in zip(*np.unique(pred, return_counts=True), strict=True):
                self._classes.labels(**self.base, **{"class": str(cls)}).inc(int(count))

    def exposition(self) -> bytes:
        self.refresh()
        return generate_latest(self.registry)
