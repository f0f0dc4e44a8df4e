"""An estimator that raises inside predict for one trigger value (importable by the server)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

TRIGGER = 13.0


class Faulty(ClassifierMixin, BaseEstimator):
    def fit(self, x, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def _check(self, x):
        if (np.asarray(x)[:, 0] == TRIGGER).any():
            raise ZeroDivisionError("trigger value in column 0")

    def predict(self, x):
        self._check(x)
        return self.classes_[(np.asarray(x)[:, 0] > 0).astype(int)]

    def predict_proba(self, x):
        self._check(x)
        p = (np.asarray(x)[:, 0] > 0).astype(float)
        return np.column_stack([1 - p, p])


class Slow(Faulty):
    """Takes ``SLOW_SECONDS`` for rows whose first value is ``SLOW_TRIGGER``, touching a marker
    file when it starts, so a test knows a request is in flight."""

    def predict(self, x):
        import os
        import time
        from pathlib import Path

        if (np.asarray(x)[:, 0] == SLOW_TRIGGER).any():
            Path(os.environ["SLOW_MARKER"]).touch()
            time.sleep(SLOW_SECONDS)
        return super().predict(x)


SLOW_TRIGGER = 7.0
SLOW_SECONDS = 1.5
