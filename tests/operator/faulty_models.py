"""Estimators for the rollout tests that misbehave on purpose.

Imported by the predictor pods too (the test sets PYTHONPATH on the
ModelDeployment), because joblib stores the class by its module name.
"""

from __future__ import annotations

import os
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class _Misbehaving(ClassifierMixin, BaseEstimator):
    """A wrapped classifier that misbehaves (`_misbehave`) once its grace calls are over.

    The first calls of a process pass (the bundle tool checking the model, the
    predictor warming up), so the bundle builds and the pod becomes Ready.
    """

    grace_calls = 20

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
        if calls > self.grace_calls:
            self._misbehave(np.asarray(x, dtype=float))

    def _misbehave(self, rows: np.ndarray) -> None:
        raise NotImplementedError

    def predict(self, x):
        self._check(x)
        return self.base.predict(x)

    def predict_proba(self, x):
        self._check(x)
        return self.base.predict_proba(x)


class FailsOnShare(_Misbehaving):
    """Raises for live rows whose first feature exceeds a threshold: a share of
    requests fail."""

    def __init__(self, base=None, threshold: float = 0.0) -> None:
        self.base = base
        self.threshold = threshold

    def _misbehave(self, rows: np.ndarray) -> None:
        if np.any(rows[:, 0] > self.threshold):
            raise RuntimeError("injected failure")


class SlowAfterGrace(_Misbehaving):
    """Right answers, `delay` seconds late per call, as a candidate with a
    pathological code path would be."""

    def __init__(self, base=None, delay: float = 0.4) -> None:
        self.base = base
        self.delay = delay

    def _misbehave(self, rows: np.ndarray) -> None:
        time.sleep(self.delay)


class TurnsBadOnSwitch(_Misbehaving):
    """Right answers until the file `switch` exists, then every call raises (or,
    with `delay`, is that many seconds late): a candidate that goes bad after it
    passed its first steps. The test creates the file; the pods are processes of
    the local node, on the test's filesystem."""

    def __init__(self, base=None, switch: str = "", delay: float = 0.0) -> None:
        self.base = base
        self.switch = switch
        self.delay = delay

    def _misbehave(self, rows: np.ndarray) -> None:
        if not os.path.exists(self.switch):
            return
        if self.delay:
            time.sleep(self.delay)
        else:
            raise RuntimeError("injected failure (switch file present)")
