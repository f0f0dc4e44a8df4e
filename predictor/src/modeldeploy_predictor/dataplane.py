"""The data plane: one loaded model plus batching, metrics, drift and the prediction log.

Endpoints (HTTP specifics) call :meth:`DataPlane.predict` with a parsed matrix;
everything protocol-independent happens here, so OIP v2, KServe v1 and
``/predict`` behave the same. Readiness is set only after the model answered a
warm-up prediction.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import Any

import numpy as np
import sklearn

from . import columns, drift, feedback, parsing
from .batching import AdaptiveBatcher, BatcherStopped
from .config import Settings
from .metrics import Metrics
from .model import SklearnModel
from .predlog import PredictionLog
from .schema import BOOLEAN, CATEGORICAL, Feature

# Rows past which a request is predicted in a worker thread instead of on the event loop.
BIG_ROWS = 20_000

log = logging.getLogger(__name__)


class ModelError(Exception):
    """The model raised inside predict; the endpoints turn it into a 500."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.error_class = type(cause).__name__


class NotReady(Exception):
    """The model is not (or no longer) serving."""


class DataPlane:
    def __init__(self, model: SklearnModel, settings: Settings) -> None:
        self.model = model
        self.settings = settings
        self.name = settings.model_name or model.name
        self.version = settings.model_version or model.version
        self.ready = False
        base = {
            "model": self.name,
            "version": self.version,
            "track": settings.track,
            "revision": settings.revision,
        }
        pred_bins = model.bundle.prediction_bins
        seen = [_seen(f) for f in model.schema.features]
        window = drift.DriftWindow(
            model.bundle.feature_bins, pred_bins, settings.drift_window, seen
        )
        buckets = None
        if not model.is_classifier and isinstance(pred_bins, drift.NumericBins):
            buckets = pred_bins.edges.tolist()
        categorical = [f.name for f in model.schema.features if f.kind == CATEGORICAL]
        self.metrics = Metrics(base, window, model.feature_names, buckets, categorical)
        self.metrics.model_info(
            model.bundle.digest,
            model.bundle.meta.versions.get("sklearn", ""),
            model.load_seconds,
        )
        self.feedback = feedback.PredictionMemory(
            settings.feedback_ids,
            settings.feedback_ttl,
            settings.feedback_max_rows,
            settings.feedback_total_rows,
            on_evict=self.metrics.forgotten,
        )
        self.batcher: AdaptiveBatcher | None = None
        if settings.batching and settings.max_batch_size > 1:
            self.batcher = AdaptiveBatcher(
                model.predict,
                settings.max_batch_size,
                settings.max_wait_ms,
                in_thread=settings.predict_in_thread,
                on_batch=self.metrics.batch,
                concat=columns.concat,
            )
        self.predlog: PredictionLog | None = None
        self._drift_task: asyncio.Task | None = None

    async def start(self) -> None:
        self.model.warm_up()
        if self.settings.prediction_log:
            self.predlog = PredictionLog(
                self.settings.prediction_log,
                self.settings.prediction_log_buffer,
                on_drop=self.metrics.log_dropped.inc,
            )
        if self.batcher is not None:
            await self.batcher.start()
        self._drift_task = asyncio.get_running_loop().create_task(self._drift_timer())
        # The loaded estimator and libraries are long-lived: moving them out of the
        # collector's reach keeps full collections (tens of ms with a large model)
        # off the request path's tail latency.
        gc.freeze()
        self.ready = True
        log.info(
            "model %s version %s ready (digest %s)",
            self.name,
            self.version,
            self.model.bundle.digest,
        )

    async def stop(self) -> None:
        """Called after the server stopped taking requests: drain and release."""
        self.ready = False
        if self.batcher is not None:
            await self.batcher.stop()
        if self._drift_task is not None:
            self._drift_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drift_task
        if self.predlog is not None:
            self.predlog.close()
        self.model.unload()

    async def _drift_timer(self) -> None:
        while True:
            await asyncio.sleep(self.settings.drift_interval)
            try:
                self.metrics.refresh()
            except Exception:  # a drift bug must never take serving down
                log.exception("drift refresh failed")

    async def predict(self, x: Any, proba: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``x``: a float matrix (all-numeric models) or :class:`columns.Columns`."""
        if not self.ready:
            raise NotReady("model is not ready")
        if isinstance(x, np.ndarray):
            parsing.check_finite(x, self.model.allow_nan)
        try:
            if x.shape[0] > BIG_ROWS:
                # A huge request runs beside the event loop (and the batcher), so small
                # requests keep being answered meanwhile.
                return await asyncio.to_thread(self._predict_counted, x, proba)
            if self.batcher is not None:
                pred, probabilities = await self.batcher.submit(x, proba)
            else:
                pred, probabilities = self.model.predict(x, proba)
                self.metrics.batch(1, x.shape[0])
        except BatcherStopped as exc:
            raise NotReady(str(exc)) from None
        except Exception as exc:
            raise self._model_failure(x, exc) from exc
        self.metrics.predictions(x, pred)
        return pred, probabilities

    def _predict_counted(self, x: Any, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        pred, probabilities = self.model.predict(x, proba)
        self.metrics.batch(1, x.shape[0])
        self.metrics.predictions(x, pred)
        return pred, probabilities

    def _model_failure(self, x: Any, exc: Exception) -> Exception:
        """A category the pipeline refuses (handle_unknown="error") is the client's 422."""
        if isinstance(x, columns.Columns):
            unseen = columns.first_unseen(self.model.schema, x)
            if unseen is not None:
                feature, value = unseen
                return parsing.InputError(
                    "unknown_category",
                    f"column {feature!r}: category {value!r:.60} was never seen in training "
                    f"and this model refuses unknown categories ({type(exc).__name__})",
                    feature,
                    "a category seen in training",
                    value,
                )
        self.metrics.model_error(type(exc).__name__)
        return ModelError(exc)

    def remember(self, request_id: str, pred: np.ndarray) -> None:
        """Keep the prediction for a later outcome (feedback.py)."""
        reason = self.feedback.remember(request_id, pred)
        if reason is not None and reason != "off":
            self.metrics.forgotten(reason, 1)

    def judge_outcomes(self, outcomes: list[feedback.Outcome]) -> list[feedback.Judged]:
        judged = [self.feedback.judge(o, self.model.is_classifier) for o in outcomes]
        for j in judged:
            if j.result == feedback.RECORDED:
                self.metrics.outcome(j.rows, j.correct, j.abs_error)
        self.metrics.feedback_memory.set(len(self.feedback))
        return judged

    def log_prediction(
        self, request_id: str, endpoint: str, x: Any, pred: Any, started: float
    ) -> None:
        if self.predlog is None:
            return
        if isinstance(x, columns.Columns):
            x = x.tolist()
        self.predlog.write(
            {
                "ts": time.time(),
                "request_id": request_id,
                "model": self.name,
                "version": self.version,
                "track": self.settings.track,
                "revision": self.settings.revision,
                "endpoint": endpoint,
                "inputs": x,
                "outputs": pred,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            }
        )

    def metadata(self) -> dict[str, Any]:
        meta = self.model.bundle.meta
        n_classes = len(meta.classes or ())
        outputs = [{"name": "predict", "datatype": _datatype(self.model), "shape": [-1]}]
        if self.model.has_proba:
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, n_classes]})
        schema = self.model.schema
        if schema.all_numeric:
            inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, len(schema.names)]}]
        else:  # one input per column, as MLServer's pandas codec sends them
            inputs = [
                {"name": f.name, "datatype": _input_datatype(f), "shape": [-1]}
                for f in schema.features
            ]
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": f"sklearn-{sklearn.__version__}",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {
                "task": meta.task,
                "classes": self.model.classes,
                "features": self.model.feature_names,
                "digest": self.model.bundle.digest,
                "estimator": meta.estimator.class_name,
                "schema": schema.to_json(),
            },
        }


def _seen(feature: Feature) -> list | None:
    """Values a feature's reference had, to count unseen ones (None: not counted)."""
    if feature.kind == BOOLEAN:
        return [False, True]
    if feature.kind == CATEGORICAL and feature.categories:
        return list(feature.categories)
    return None


def _input_datatype(feature: Feature) -> str:
    if feature.kind == BOOLEAN:
        return "BOOL"
    return "BYTES" if feature.string_values else "FP64"


def _datatype(model: SklearnModel) -> str:
    if not model.is_classifier:
        return "FP64"
    classes = model.classes or []
    if all(isinstance(c, int) for c in classes):
        return "INT64"
    if all(isinstance(c, int | float) for c in classes):
        return "FP64"
    return "BYTES"
