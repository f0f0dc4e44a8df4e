"""Reading reference datasets (CSV or Parquet) into a float matrix plus column names.

pandas is deliberately not a dependency of the predictor image: CSV is read with
the standard library and NumPy, Parquet with pyarrow (the ``parquet`` extra).
Only numeric features are supported, and a column that is not numeric is named
in the error instead of failing deep inside NumPy.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np


class TableError(ValueError):
    """The reference data cannot be read as numeric features."""


def read_table(path: str | Path) -> tuple[list[str], np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    if path.suffix.lower() in {".parquet", ".pq"}:
        return _read_parquet(path)
    return _read_csv(path)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise TableError(f"{path}: empty file, expected a header row with feature names")
        rows = [row for row in reader if row]
    names = [h.strip() for h in header]
    for lineno, row in enumerate(rows, start=2):
        if len(row) != len(names):
            raise TableError(f"{path}:{lineno}: {len(row)} fields, header has {len(names)}")
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data = np.empty((len(rows), len(names)))
    for j, (name, column) in enumerate(zip(names, columns, strict=True)):
        data[:, j] = _numeric(path, name, column)
    return names, data


def _numeric(path: Path, name: str, column) -> np.ndarray:
    try:
        return np.array([float(v) if v.strip() else np.nan for v in column])
    except ValueError as exc:
        raise TableError(f"{path}: column {name!r} is not numeric ({exc})") from None


def _read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the install
        raise TableError(
            "reading Parquet needs pyarrow: pip install 'modeldeploy-predictor[parquet]'"
        ) from None
    table = pq.read_table(path)
    names = list(table.column_names)
    data = np.empty((table.num_rows, len(names)))
    for j, name in enumerate(names):
        column = table.column(name)
        try:
            data[:, j] = column.to_numpy(zero_copy_only=False).astype(float)
        except (TypeError, ValueError) as exc:
            raise TableError(
                f"{path}: column {name!r} is not numeric ({column.type}): {exc}"
            ) from None
    return names, data
