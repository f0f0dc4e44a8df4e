"""A bundle's validation set: rows (and optional labels) the operator replays
against a candidate and the stable revision before any user request reaches
the candidate (`strategy.validation`).

Stored as ``validation.json`` in the bundle and listed in ``model.json``
(``validation``: file, sha256, rows, whether labels exist, the source file's
sha256), so the bundle digest covers it like every other file. Features are
the bundle's, in the bundle's order; other columns are ignored.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from . import tables
from .bundle import MODEL_JSON, BundleError, verify_file
from .modelmeta import ModelMeta, ValidationFile

VALIDATION_JSON = "validation.json"
# The operator holds the rows in memory and sends each to two revisions.
MAX_ROWS = 10_000


def attach(bundle_dir: Path, table: Path, label_column: str | None = None) -> Path:
    """Add `table` (CSV or Parquet) as the bundle's validation set; returns the file."""
    meta_path = bundle_dir / MODEL_JSON
    meta = ModelMeta.loads(meta_path.read_bytes(), meta_path)
    features = meta.features.names
    frame = tables.read_table(table)
    names = list(frame.columns)
    missing = [f for f in features if f not in names]
    if missing:
        raise BundleError(f"{table}: validation set lacks the model's features {missing}")
    if label_column is not None and label_column not in names:
        raise BundleError(f"{table}: no label column {label_column!r} (columns: {names})")
    if not 0 < len(frame) <= MAX_ROWS:
        raise BundleError(f"{table}: {len(frame)} rows; a validation set holds 1-{MAX_ROWS}")
    labels = None
    if label_column is not None:
        classes = None if meta.classes is None else list(meta.classes)
        labels = _labels(frame[label_column], classes, table)
    # Rows in the model's feature order, as JSON values (missing -> null).
    rows = [[_json_value(v) for v in row] for row in frame[features].itertuples(index=False)]
    doc = {"features": features, "rows": rows, "labels": labels}
    path = bundle_dir / VALIDATION_JSON
    path.write_bytes(orjson.dumps(doc))
    entry = ValidationFile(
        VALIDATION_JSON,
        tables.file_sha256(path),
        len(rows),
        labels is not None,
        tables.file_sha256(table),
    )
    meta_path.write_bytes(replace(meta, validation=entry).dumps())
    return path


def _json_value(value: Any) -> Any:
    """A table cell as JSON: NumPy scalars as Python values, NaN / None / NA as null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return _json_value(value.item())
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return value


def _labels(column: Any, classes: list[Any] | None, table: Path) -> list[Any]:
    values = [_json_value(v) for v in column.tolist()]
    if any(v is None for v in values):
        raise BundleError(f"{table}: the label column has empty values")
    if classes is None:  # a regressor: the true values
        return [float(v) for v in values]
    # Numeric labels may be read as floats; give them the type of the model's classes.
    values = [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
    unknown = sorted({v for v in values if v not in classes}, key=str)
    if unknown:
        raise BundleError(f"{table}: labels {unknown[:5]} are not among the classes {classes}")
    return values


def load(bundle_dir: Path, meta: ModelMeta) -> dict[str, Any] | None:
    """The verified validation set of a bundle, or None when it has none."""
    entry = meta.validation
    if entry is None:
        return None
    path = bundle_dir / entry.file
    verify_file(path, entry.sha256)
    return orjson.loads(path.read_bytes())
