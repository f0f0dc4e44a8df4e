"""Library versions a bundle was made with, and the check that the predictor has the same.

A pickled estimator is only guaranteed to behave the same under the library
versions that wrote it, so ``model.json`` records scikit-learn's and NumPy's,
pandas' for DataFrame models, and XGBoost's / LightGBM's when the estimator
(or a step of its Pipeline) comes from them. Loading refuses a mismatch of any
recorded model library, like scikit-learn's, unless told to allow it.
"""

from __future__ import annotations

import importlib
import logging
import platform
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Libraries whose estimators can sit in a bundle, with the predictor extra that installs them.
MODEL_LIBRARIES = {"sklearn": None, "xgboost": "xgboost", "lightgbm": "lightgbm"}
CHECKED = ("sklearn", "xgboost", "lightgbm")


class LibraryError(Exception):
    """A recorded library is missing or has another version."""


def installed(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


def used_modules(estimator: Any) -> set[str]:
    """Top-level modules of the estimator and of every estimator among its (deep) params."""
    found = {type(estimator).__module__.split(".")[0]}
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return found
    try:
        params = get_params(deep=True)
    except Exception:  # a third-party estimator with a broken get_params: record what we can
        return found
    for value in params.values():
        if hasattr(value, "fit") or hasattr(value, "transform"):
            found.add(type(value).__module__.split(".")[0])
        if isinstance(value, list):  # Pipeline.steps, ColumnTransformer.transformers
            for item in value:
                obj = item[1] if isinstance(item, tuple) and len(item) > 1 else item
                if hasattr(obj, "fit"):
                    found |= used_modules(obj)
    return found


def versions(estimator: Any, pandas: bool) -> dict[str, str]:
    import numpy as np
    import sklearn

    out = {"python": platform.python_version(), "sklearn": sklearn.__version__}
    out["numpy"] = np.__version__
    if pandas:
        out["pandas"] = installed("pandas") or ""
    for module in sorted(used_modules(estimator) & set(MODEL_LIBRARIES) - {"sklearn"}):
        out[module] = installed(module) or ""
    return out


def check(recorded: Mapping[str, str], allow_mismatch: bool, where: Path) -> None:
    """Refuse (or, when allowed, warn about) a model library missing or of another version."""
    for module in CHECKED:
        want = recorded.get(module)
        if module != "sklearn" and want is None:
            continue  # the model does not use it
        have = installed(module)
        extra = MODEL_LIBRARIES[module]
        if have is None:
            hint = f": pip install 'modeldeploy-predictor[{extra}]'" if extra else ""
            raise LibraryError(f"{where}: the model needs {module} {want}, not installed{hint}")
        if want == have:
            continue
        message = (
            f"{where}: bundle was made with {_label(module)} {want}, this predictor has {have}"
        )
        if not allow_mismatch:
            raise LibraryError(message + " (pass --allow-version-mismatch to load anyway)")
        log.warning("%s; loading anyway (--allow-version-mismatch)", message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _label(module: str) -> str:
    return "scikit-learn" if module == "sklearn" else module
