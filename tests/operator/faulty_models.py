"""Estimators for the rollout tests that misbehave on purpose.

Imported by the predictor pods too (the test sets PYTHONPATH on the
ModelDeployment), because joblib stores the class by its module name.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class FailsOnShare(ClassifierMixin, BaseEstimator):
    """A fitted classifier that raises for rows whose first feature exceeds a threshold."""

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

    def predict(self, x):
        if np.any(np.asarray(x, dtype=float)[:, 0] > self.threshold):
            raise RuntimeError("injected failure")
        return self.base.predict(x)

    def predict_proba(self, x):
        if np.any(np.asarray(x, dtype=float)[:, 0] > self.threshold):
            raise RuntimeError("injected failure")
        return self.base.predict_proba(x)
