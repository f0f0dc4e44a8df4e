"""A batch of mixed-type rows as one typed NumPy array per feature, and its DataFrame.

Requests to a model with categorical or boolean features are parsed into
:class:`Columns` (float64 for numbers with NaN for missing, object arrays of
strings / numbers with ``None`` for missing categoricals, bool or object for
booleans). The batcher concatenates them per column; the DataFrame the
estimator needs is built once per batch by :func:`to_frame`, with every
column in the dtype the reference had, so the estimator sees what it was
fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .schema import BOOLEAN, CATEGORICAL, NUMERIC, Schema


@dataclass(frozen=True)
class Columns:
    arrays: tuple[np.ndarray, ...]  # one 1-D array per feature, in the schema's order

    @property
    def shape(self) -> tuple[int, int]:
        return (self.arrays[0].shape[0] if self.arrays else 0, len(self.arrays))

    def __len__(self) -> int:
        return self.shape[0]

    def tolist(self) -> list[list[Any]]:
        """Rows as lists (the prediction log's ``inputs``)."""
        return [list(row) for row in zip(*(a.tolist() for a in self.arrays), strict=True)]


def concat(parts: Sequence[Any]) -> Any:
    """The batcher's merge: float matrices as before, Columns per column."""
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    n = len(parts[0].arrays)
    return Columns(tuple(np.concatenate([p.arrays[j] for p in parts]) for j in range(n)))


def from_values(schema: Schema, values: Sequence[Sequence[Any]]) -> Columns:
    """Trusted Python values (one sequence per feature) -> Columns; no validation."""
    arrays = []
    for feature, column in zip(schema.features, values, strict=True):
        if feature.kind == NUMERIC or (feature.kind == CATEGORICAL and not feature.string_values):
            arrays.append(np.array([np.nan if v is None else v for v in column], dtype=float))
        elif feature.kind == BOOLEAN and None not in column:
            arrays.append(np.array(column, dtype=bool))
        else:
            arr = np.empty(len(column), dtype=object)
            arr[:] = list(column)
            arrays.append(arr)
    return Columns(tuple(arrays))


def to_frame(schema: Schema, x: Any) -> Any:
    """The DataFrame the estimator was fitted on: names and dtypes of the reference."""
    import pandas as pd

    if isinstance(x, np.ndarray):  # all-numeric model that selects columns by name
        return pd.DataFrame(x, columns=schema.names, copy=False)
    data = {f.name: _column(f, a) for f, a in zip(schema.features, x.arrays, strict=True)}
    return pd.DataFrame(data, copy=False)


def _column(feature: Any, arr: np.ndarray) -> Any:
    import pandas as pd

    dtype = feature.dtype
    if dtype == "category":
        return pd.Categorical(arr, categories=list(feature.categories))
    if arr.dtype.kind == "f":  # numbers (numeric, or a numeric categorical)
        if dtype.startswith(("int", "uint")) and not np.isnan(arr).any():
            return arr.astype(dtype)
        return arr
    if arr.dtype.kind == "b":
        return arr
    missing = pd.isna(arr)
    if dtype == "object" or dtype == "bool":
        # pandas' own missing marker in object columns (what read_csv gives the fit)
        return np.where(missing, np.nan, arr) if missing.any() else arr
    try:
        return pd.array(arr, dtype=dtype)  # str / string / boolean extension dtypes
    except (TypeError, ValueError):
        return arr


def first_unseen(schema: Schema, x: Columns) -> tuple[str, Any] | None:
    """The first (feature, value) of a categorical column that the reference never had."""
    for feature, arr in zip(schema.features, x.arrays, strict=True):
        if feature.kind != CATEGORICAL or not feature.categories:
            continue
        seen = set(feature.categories)
        for value in arr.tolist():
            if value is not None and value == value and value not in seen:  # NaN != NaN
                return feature.name, value
    return None
