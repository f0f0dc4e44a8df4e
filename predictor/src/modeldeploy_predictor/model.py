"""The served model: ``load / predict / unload`` around a verified bundle.

Kept apart from HTTP and batching so the same object is used by the server,
the in-process benchmark ceiling and the tests. ``predict`` returns a pair
``(predictions, probabilities or None)`` with one row per input row.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import bundle as bundle_mod
from . import columns, sources


class SklearnModel:
    def __init__(self, loaded: bundle_mod.Bundle, load_seconds: float = 0.0) -> None:
        self.bundle = loaded
        self.estimator = loaded.estimator
        self.feature_names = loaded.feature_names
        self.n_features = len(self.feature_names)
        self.is_classifier = loaded.is_classifier
        self.classes = None if loaded.meta.classes is None else list(loaded.meta.classes)
        self.load_seconds = load_seconds
        self.allow_nan = _allows_nan(self.estimator)
        self.schema = loaded.schema.with_nullable(self.allow_nan)
        # Mixed types always go to the estimator as a DataFrame; all-numeric models take
        # the float matrix (fast path) unless they select columns by name (see warm_up).
        self.frame = not self.schema.all_numeric
        self._proba = self.is_classifier and hasattr(self.estimator, "predict_proba")
        # Bundles record feature names; predicting on a bare array is intended.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")

    @classmethod
    def load(
        cls,
        uri: str,
        *,
        cache_dir: Path | None = None,
        digest: str | None = None,
        allow_version_mismatch: bool = False,
        fetch_timeout: float = 30.0,
    ) -> SklearnModel:
        started = time.perf_counter()
        local = sources.fetch(uri, cache_dir, digest=digest, timeout=fetch_timeout)
        loaded = bundle_mod.load_bundle(local, allow_version_mismatch=allow_version_mismatch)
        return cls(loaded, time.perf_counter() - started)

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> str:
        return self.bundle.version

    @property
    def has_proba(self) -> bool:
        return self._proba

    def predict(self, x: Any, proba: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions, and class probabilities when asked for and available.

        ``x`` is a float matrix or :class:`columns.Columns`; it becomes a DataFrame
        here, once per batch, when the estimator needs one."""
        if self.frame:
            x = columns.to_frame(self.schema, x)
        pred = np.asarray(self.estimator.predict(x))
        if pred.dtype.kind == "f":
            # XGBoost answers float32: widened (exactly), so the FP64 that metadata declares
            # carries the estimator's own values, not their shortest float32 spelling
            pred = pred.astype(np.float64, copy=False)
        probabilities = None
        if proba and self._proba:
            # LightGBM returns a column-major view; orjson serialises C-contiguous arrays only
            probabilities = np.ascontiguousarray(self.estimator.predict_proba(x), dtype=np.float64)
        return pred, probabilities

    def warm_up(self) -> None:
        """One real prediction before readiness (lazy imports, caches, a sanity check)."""
        rows = self.bundle.warmup_rows()
        try:
            pred, _ = self.predict(rows)
        except Exception:
            if self.frame:
                raise
            # e.g. a ColumnTransformer selecting numeric columns by name: give it a DataFrame
            self.frame = True
            pred, _ = self.predict(rows)
        if pred.shape[0] != rows.shape[0]:
            raise RuntimeError(f"warm-up returned {pred.shape[0]} rows for {rows.shape[0]}")

    def unload(self) -> None:
        self.estimator = None


def _allows_nan(estimator: Any) -> bool:
    try:
        return bool(estimator.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:
        try:
            return bool(estimator._get_tags().get("allow_nan", False))
        except AttributeError:
            return False
