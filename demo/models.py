"""The demo's five model versions, trained on scikit-learn's iris data set.

v1 and v2 are honest models (v2 at least as accurate on the held-out rows);
v3 was trained behind a feature pipeline bug (petal length shifted by 4 cm)
so live traffic drifts away from its training reference; v4 learnt permuted
labels, so it disagrees with stable on most requests; v5 learnt labels
permuted the other way and is stopped by pre-traffic validation on the
held-out rows. Bundles are made by the predictor's own `build_bundle` and
carry the held-out rows as their validation set (`validation_set.attach`),
exactly what `modeldeploy-predictor bundle --validation` writes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from modeldeploy_predictor import bundle, validation_set
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

NAME = "iris"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SHIFTED = "petal_length"
SHIFT_CM = 4.0


@dataclass(frozen=True)
class Version:
    version: str
    story: str
    estimator: Any
    reference: np.ndarray  # training features, the drift reference
    accuracy: float  # on held-out iris rows


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return train_test_split(x, y, test_size=0.33, random_state=0, stratify=y)


def traffic_rows(seed: int = 1) -> list[dict[str, float]]:
    """Every iris row, shuffled: what the users send."""
    x, _ = load_iris(return_X_y=True)
    rows = np.random.default_rng(seed).permutation(x)
    return [dict(zip(FEATURES, map(float, r), strict=True)) for r in rows]


def train() -> list[Version]:
    x_train, x_test, y_train, y_test = data()
    j = FEATURES.index(SHIFTED)
    shifted = x_train.copy()
    shifted[:, j] += SHIFT_CM

    def fit(x: np.ndarray, y: np.ndarray, **kw: Any) -> LogisticRegression:
        return LogisticRegression(max_iter=1000, **kw).fit(x, y)

    made = [
        ("1.0.0", "baseline", fit(x_train, y_train, C=0.05), x_train),
        ("2.0.0", "retrained, better or equal", fit(x_train, y_train, C=1.0), x_train),
        ("3.0.0", f"{SHIFTED} shifted by {SHIFT_CM:g} cm in training", fit(shifted, y_train),
         shifted),
        ("4.0.0", "labels permuted in training", fit(x_train, (y_train + 1) % 3), x_train),
        ("5.0.0", "labels permuted the other way", fit(x_train, (y_train + 2) % 3), x_train),
    ]  # fmt: skip
    return [
        Version(v, story, est, ref, float((est.predict(x_test) == y_test).mean()))
        for v, story, est, ref in made
    ]


def bundle_all(versions: list[Version], out: Path) -> dict[str, Path]:
    """One bundle directory per version under `out`, each with the held-out rows
    (and labels) as its validation set; returns version -> path."""
    _, x_test, _, y_test = data()
    out.mkdir(parents=True, exist_ok=True)
    holdout = out / "holdout.csv"
    np.savetxt(holdout, np.column_stack([x_test, y_test]), delimiter=",",
               header=",".join([*FEATURES, "species"]), comments="")  # fmt: skip
    paths = {}
    for v in versions:
        target = out / f"{NAME}-{v.version}"
        shutil.rmtree(target, ignore_errors=True)
        paths[v.version] = bundle.build_bundle(
            v.estimator, v.reference, NAME, v.version, target, feature_names=FEATURES
        )
        validation_set.attach(paths[v.version], holdout, "species")
    return paths
