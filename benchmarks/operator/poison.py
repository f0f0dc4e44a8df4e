"""A classifier that fails on "poisoned" rows, for the live rollback benchmark.

Imported by the predictor pods too (the benchmark puts the repository on the
candidate's PYTHONPATH), because joblib stores the class by its module name.
Iris rows never have a negative sepal width, so the load generator decides
exactly when failures start by sending such rows; the stable model answers
them like any other row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

POISON_COLUMN = 1  # sepal_width
POISON_VALUE = -1.0


class FailsOnPoison(ClassifierMixin, BaseEstimator):
    def __init__(self, base: Any = None) -> None:
        self.base = base

    def fit(self, x: Any, y: Any) -> FailsOnPoison:
        self.base.fit(x, y)
        return self._copy_fitted()

    def _copy_fitted(self) -> FailsOnPoison:
        for attr in ("classes_", "n_features_in_", "feature_names_in_"):
            if hasattr(self.base, attr):
                setattr(self, attr, getattr(self.base, attr))
        return self

    @classmethod
    def around(cls, fitted: Any) -> FailsOnPoison:
        """Wrap an already fitted estimator."""
        return cls(fitted)._copy_fitted()

    def _check(self, x: Any) -> None:
        if np.any(np.asarray(x, dtype=float)[:, POISON_COLUMN] == POISON_VALUE):
            raise RuntimeError("injected failure on a poisoned row")

    def predict(self, x: Any) -> Any:
        self._check(x)
        return self.base.predict(x)

    def predict_proba(self, x: Any) -> Any:
        self._check(x)
        return self.base.predict_proba(x)
