"""The benchmark's models, trained at the start of a run and saved once with joblib.

- ``classifier``: GradientBoostingClassifier on breast_cancer (30 numeric features);
- ``regressor``: GradientBoostingRegressor on a synthetic 50-feature set;
- ``mixed``: a churn-like Pipeline on a DataFrame: OneHotEncoder on 3 string
  columns, 5 numeric columns passed through, GradientBoostingClassifier.

Every server loads the same joblib file; the predictor gets a bundle made from
it with :func:`build_bundle` (the DataFrame itself is the mixed model's reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from modeldeploy_predictor.bundle import build_bundle
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, make_regression
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

ALL = ("classifier", "regressor", "mixed")
MIXED_STRINGS = {
    "plan": ["basic", "standard", "premium", "family"],
    "region": ["north", "south", "east", "west", "centre", "islands", "abroad", "unknown"],
    "device": ["android", "ios", "web"],
}
MIXED_NUMBERS = ("tenure_months", "monthly_fee", "usage_gb", "support_calls", "age")


@dataclass
class Model:
    name: str
    estimator: Any
    x: Any  # float matrix, or a DataFrame for the mixed model
    names: list[str]
    joblib_path: Path
    bundle: Path

    @property
    def mixed(self) -> bool:
        return not isinstance(self.x, np.ndarray)


def make_models(workdir: Path, which: list[str]) -> list[Model]:
    unknown = set(which) - set(ALL)
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; choose from {', '.join(ALL)}")
    models = []
    if "classifier" in which:
        data = load_breast_cancer()
        names = [n.replace(" ", "_") for n in data.feature_names]
        est = GradientBoostingClassifier(random_state=0).fit(data.data, data.target)
        models.append(_save("cancer", est, data.data, names, workdir))
    if "regressor" in which:
        x, y = make_regression(n_samples=2000, n_features=50, noise=0.1, random_state=0)
        est = GradientBoostingRegressor(random_state=0).fit(x, y)
        models.append(_save("synth50", est, x, [f"f{i}" for i in range(50)], workdir))
    if "mixed" in which:
        frame, y = churn_frame(4000, seed=0)
        est = mixed_pipeline().fit(frame, y)
        models.append(_save("churn", est, frame, list(frame.columns), workdir))
    return models


def churn_frame(n: int, seed: int) -> tuple[Any, np.ndarray]:
    """Synthetic churn data: string columns with uneven shares, numbers, a 0/1 label."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for col, cats in MIXED_STRINGS.items():
        shares = rng.dirichlet(np.ones(len(cats)) * 2)
        data[col] = rng.choice(np.array(cats, dtype=object), size=n, p=shares)
    data["tenure_months"] = rng.integers(1, 72, n).astype(float)
    data["monthly_fee"] = rng.normal(40, 12, n).round(2)
    data["usage_gb"] = rng.gamma(2.0, 8.0, n).round(1)
    data["support_calls"] = rng.poisson(1.5, n).astype(float)
    data["age"] = rng.integers(18, 80, n).astype(float)
    frame = pd.DataFrame(data)
    score = (
        (frame["plan"] == "basic") * 1.0
        + (frame["device"] == "web") * 0.5
        + frame["support_calls"] * 0.4
        - frame["tenure_months"] / 24
        + rng.normal(0, 0.5, n)
    )
    return frame, (score > 0).astype(int).to_numpy()


def mixed_pipeline() -> Pipeline:
    encode = ColumnTransformer(
        [
            ("strings", OneHotEncoder(handle_unknown="ignore"), list(MIXED_STRINGS)),
            ("numbers", "passthrough", list(MIXED_NUMBERS)),
        ]
    )
    return Pipeline([("encode", encode), ("model", GradientBoostingClassifier(random_state=0))])


def _save(name: str, est: Any, x: Any, names: list[str], workdir: Path) -> Model:
    path = workdir / f"{name}.joblib"
    joblib.dump(est, path)
    if isinstance(x, np.ndarray):
        bundle = build_bundle(est, x, name, "1", workdir / f"bundle-{name}", feature_names=names)
    else:
        bundle = build_bundle(est, x, name, "1", workdir / f"bundle-{name}")
    return Model(name, est, x, names, path, bundle)


def batch_of(model: Model, rows: int) -> Any:
    """``rows`` rows of the model's data (repeated as needed), in the estimator's input type."""
    index = np.resize(np.arange(len(model.x)), rows)
    return model.x.iloc[index] if model.mixed else model.x[index]
