"""Reading reference datasets (CSV or Parquet) into a pandas DataFrame.

Column types are inferred by pandas, as a user's own ``read_csv`` would (numbers
-> numeric, text -> categorical, ``True``/``False`` -> boolean), and can be
overridden per column: CSV has no types, so a code column such as a zip code
must be declared categorical to stay a string (``--categorical``), and a 0/1
or yes/no column declared boolean (``--boolean``). A column named in an
override that does not exist, or a boolean column with another value, is named
in the error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f"}


class TableError(ValueError):
    """The reference data cannot be read; the message names the file and column."""


def read_table(
    path: str | Path, categorical: Sequence[str] = (), boolean: Sequence[str] = ()
) -> Any:
    """A DataFrame of the reference features, with the overrides applied."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    overlap = sorted(set(categorical) & set(boolean))
    if overlap:
        raise TableError(f"columns {overlap} are declared both categorical and boolean")
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    try:
        if parquet:
            frame = _read_parquet(path)
        else:
            dtypes = {c: str for c in (*categorical, *boolean)}
            frame = pd.read_csv(path, dtype=dtypes or None, skipinitialspace=True)
    except TableError:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise TableError(f"{path}: cannot read: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    unknown = [c for c in (*categorical, *boolean) if c not in frame.columns]
    if unknown:
        raise TableError(f"{path}: no columns {unknown} (it has {list(frame.columns)})")
    for col in boolean:
        frame[col] = _booleans(path, col, frame[col])
    return frame


def _booleans(path: Path, col: str, series: Any) -> Any:
    import pandas as pd

    if series.dtype == bool:
        return series
    text = series.astype(object).map(lambda v: None if pd.isna(v) else str(v).strip().lower())
    bad = sorted({v for v in text.dropna() if v not in TRUE | FALSE})
    if bad:
        raise TableError(
            f"{path}: column {col!r} is declared boolean but holds {bad[:5]} "
            f"(expected one of {sorted(TRUE | FALSE)})"
        )
    values = text.map(lambda v: None if v is None else v in TRUE)
    return values.astype(bool) if values.notna().all() else values.astype(object)


def _read_parquet(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the install
        raise TableError(
            "reading Parquet needs pyarrow: pip install 'modeldeploy-predictor[parquet]'"
        ) from None
    return pq.read_table(path).to_pandas()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def frame_sha256(frame: Any) -> str:
    """Digest of an in-memory reference (no file): column names and values."""
    import pandas as pd

    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
