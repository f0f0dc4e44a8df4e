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

from . import drift, parsing
from .batching import AdaptiveBatcher, BatcherStopped
from .config import Settings
from .metrics import Metrics
from .model import SklearnModel
from .predlog import PredictionLog

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
        window = drift.DriftWindow(model.bundle.feature_bins, pred_bins, settings.drift_window)
        buckets = None
        if not model.is_classifier and isinstance(pred_bins, drift.NumericBins):
            buckets = pred_bins.edges.tolist()
        self.metrics = Metrics(base, window, model.feature_names, buckets)
        self.metrics.model_info(
            model.bundle.digest,
            model.bundle.meta["versions"].get("sklearn", ""),
            model.load_seconds,
        )
        self.batcher: AdaptiveBatcher | None = None
        if settings.batching and settings.max_batch_size > 1:
            self.batcher = AdaptiveBatcher(
                model.predict,
                settings.max_batch_size,
                settings.max_wait_ms,
                in_thread=settings.predict_in_thread,
                on_batch=self.metrics.batch,
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

    async def predict(
        self, x: np.ndarray, proba: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.ready:
            raise NotReady("model is not ready")
        parsing.check_finite(x, self.model.allow_nan)
        try:
            if self.batcher is not None:
                pred, probabilities = await self.batcher.submit(x, proba)
            else:
                pred, probabilities = self.model.predict(x, proba)
                self.metrics.batch(1, x.shape[0])
        except BatcherStopped as exc:
            raise NotReady(str(exc)) from None
        except Exception as exc:
            self.metrics.model_error(type(exc).__name__)
            raise ModelError(exc) from exc
        self.metrics.predictions(x, pred)
        return pred, probabilities

    def log_prediction(
        self, request_id: str, endpoint: str, x: np.ndarray, pred: Any, started: float
    ) -> None:
        if self.predlog is None:
            return
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
        outputs = [{"name": "predict", "datatype": _datatype(self.model), "shape": [-1]}]
        if self.model.has_proba:
            outputs.append(
                {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(meta["classes"])]}
            )
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": f"sklearn-{sklearn.__version__}",
            "inputs": [
                {"name": "input-0", "datatype": "FP64", "shape": [-1, self.model.n_features]}
            ],
            "outputs": outputs,
            "parameters": {
                "task": meta["task"],
                "classes": meta.get("classes"),
                "features": self.model.feature_names,
                "digest": self.model.bundle.digest,
                "estimator": meta["estimator"].get("class"),
            },
        }


def _datatype(model: SklearnModel) -> str:
    if not model.is_classifier:
        return "FP64"
    classes = model.classes or []
    if all(isinstance(c, int) for c in classes):
        return "INT64"
    if all(isinstance(c, int | float) for c in classes):
        return "FP64"
    return "BYTES"
