"""Estimators for the rollout tests that misbehave on purpose.

Imported by the predictor pods too (the test sets PYTHONPATH on the
ModelDeployment), because joblib stores the class by its module name.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class FailsOnShare(ClassifierMixin, BaseEstimator):
    """A classifier that raises for live rows whose first feature exceeds a threshold.

    The first calls of a process pass (the bundle tool checking the model, the
    predictor warming up), so the bundle builds and the pod becomes Ready;
    afterwards a share of requests fail.
    """

    grace_calls = 20

    def __init__(self, base=None, threshold: float = 0.0) -> None:
        self.base = base
        self.threshold = threshold

    def fit(self, x, y):
        self.base.fit(x, y)
        self.classes_ = self.base.classes_
        self.n_features_in_ = self.base.n_features_in_
        if hasattr(self.base, "feature_names_in_"):
            self.feature_names_in_ = self.base.feature_names_in_
        return self

    def _check(self, x) -> None:
        calls = self.__dict__.get("_calls", 0) + 1
        self.__dict__["_calls"] = calls
        rows = np.asarray(x, dtype=float)
        if calls > self.grace_calls and np.any(rows[:, 0] > self.threshold):
            raise RuntimeError("injected failure")

    def predict(self, x):
        self._check(x)
        return self.base.predict(x)

    def predict_proba(self, x):
        self._check(x)
        return self.base.predict_proba(x)
