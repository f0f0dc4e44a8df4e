"""Request bodies -> a float64 matrix in the bundle's feature order, or a precise InputError.

Pure functions, no HTTP: the endpoints hand in parsed JSON and get back a
NumPy matrix. The JSON is turned into NumPy in one ``np.asarray`` call per
tensor (no per-element Python validation, no pydantic) and checked by dtype
kind and shape afterwards; the slow path that pinpoints the offending element
only runs once something is already known to be wrong.

Every error names the field, what was expected and what was received, so a
client can fix its request from the response alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

# OIP v2 datatypes accepted for inputs -> dtype kinds the JSON data may have.
NUMERIC_TYPES = {
    "FP16": "f",
    "FP32": "f",
    "FP64": "f",
    "INT8": "i",
    "INT16": "i",
    "INT32": "i",
    "INT64": "i",
    "UINT8": "i",
    "UINT16": "i",
    "UINT32": "i",
    "UINT64": "i",
}
DATATYPES = sorted([*NUMERIC_TYPES, "BYTES", "BOOL"])
MAX_DIMS = 2  # [rows] or [rows, columns]: nothing served here takes more
MAX_DIM = 2**31 - 1  # rows or columns in one request; far above any body limit


@dataclass
class InputError(Exception):
    """A client error; rendered as a 4xx JSON body by the endpoints."""

    reason: str  # short machine-readable label (also the metric label)
    message: str
    field: str | None = None
    expected: Any = None
    got: Any = None
    status: int = 422

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "reason": self.reason}
        if self.field is not None:
            out["field"] = self.field
        if self.expected is not None:
            out["expected"] = self.expected
        if self.got is not None:
            out["got"] = self.got
        return out


def loads(body: bytes) -> Any:
    if not body:
        raise InputError(
            "invalid_json", "request body is empty", expected="a JSON document", status=400
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError(
            "invalid_json", f"request body is not valid JSON: {exc}", expected="JSON", status=400
        ) from None


def _kind_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _require(doc: Any, key: str, kind: type, field: str) -> Any:
    if not isinstance(doc, dict):
        raise InputError(
            "schema",
            f"{field or 'body'} must be a JSON object",
            field or "body",
            "object",
            _kind_name(doc),
        )
    if key not in doc:
        raise InputError(
            "schema",
            f"field {_join(field, key)!r} is missing",
            _join(field, key),
            kind.__name__,
            "missing",
        )
    value = doc[key]
    if not isinstance(value, kind):
        names: dict[type, str] = {list: "array", dict: "object", str: "string"}
        expected = names.get(kind, kind.__name__)
        raise InputError(
            "schema",
            f"field {_join(field, key)!r} must be {expected}",
            _join(field, key),
            expected,
            _kind_name(value),
        )
    return value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _numbers(data: Any, field: str, integer: bool = False, bools: bool = True) -> np.ndarray:
    """JSON numbers (nested lists allowed) -> ndarray; precise errors otherwise.

    NumPy reads ``[1, true, 3]`` as integers, so when the body may hold booleans
    (``bools``: the endpoints pass False when the raw bytes have no ``true`` /
    ``false`` at all, which keeps the common case free of a per-element scan)
    the values are scanned for them."""
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        raise InputError(
            "shape",
            f"{field} is ragged: rows have different lengths",
            field,
            "rectangular array",
            "ragged array",
        ) from None
    kind = arr.dtype.kind
    numeric = kind in "iu" or (kind == "f" and not integer) or (kind == "f" and arr.size == 0)
    if numeric and not (bools and _has_bool(data)):
        return arr
    bad = _first_bad(data, integer)
    expected = "integers" if integer else "numbers"
    if bad is None:
        raise InputError("dtype", f"{field} must hold {expected}", field, expected, str(arr.dtype))
    where, value = bad
    raise InputError(
        "dtype",
        f"{field}{where} must be {expected[:-1]}, got {_kind_name(value)} {value!r:.40}",
        field + where,
        expected[:-1],
        _kind_name(value),
    )


def _has_bool(data: Any) -> bool:
    if isinstance(data, list):
        return any(v is True or v is False or (type(v) is list and _has_bool(v)) for v in data)
    return isinstance(data, bool)


def _first_bad(data: Any, integer: bool, where: str = "") -> tuple[str, Any] | None:
    if isinstance(data, list):
        for i, item in enumerate(data):
            found = _first_bad(item, integer, f"{where}[{i}]")
            if found is not None:
                return found
        return None
    ok = isinstance(data, int) if integer else isinstance(data, int | float)
    return None if ok and not isinstance(data, bool) else (where, data)


def _from_bytes(data: Any, field: str) -> np.ndarray:
    """BYTES tensors carry numbers as strings (e.g. from CSV); parse them or name the bad one."""
    flat = np.asarray(data, dtype=object).ravel() if isinstance(data, list) else None
    if flat is None:
        raise InputError("dtype", f"{field} must be an array", field, "array", _kind_name(data))
    out = np.empty(flat.size)
    for i, value in enumerate(flat):
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError
            out[i] = float(value)
        except ValueError:
            raise InputError(
                "dtype",
                f"{field}[{i}] must be a number as a string, got {value!r:.40}",
                f"{field}[{i}]",
                "numeric string",
                _kind_name(value),
            ) from None
    return out


def tensor_data(tensor: dict, field: str) -> Any:
    """A tensor's JSON ``data`` list, or the array the binary extension decoded."""
    data = tensor.get("data")
    return data if isinstance(data, np.ndarray) else _require(tensor, "data", list, field)


def check_shape(shape: list, field: str) -> None:
    """Before anything is allocated: 1 or 2 dimensions, each a sane row / column count."""
    if 1 <= len(shape) <= MAX_DIMS and all(type(d) is int and 0 <= d <= MAX_DIM for d in shape):
        return  # the usual case, in one pass
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InputError(
            "shape",
            f"{field}.shape must be non-negative integers",
            f"{field}.shape",
            "[int, ...]",
            shape[:MAX_DIMS],
        )
    if not 1 <= len(shape) <= MAX_DIMS:
        raise InputError(
            "shape",
            f"{field}.shape has {len(shape)} dimensions; a tensor here has 1 or 2",
            f"{field}.shape",
            f"1 to {MAX_DIMS} dimensions",
            f"{len(shape)} dimensions",
        )
    for k, dim in enumerate(shape):
        if dim > MAX_DIM:
            raise InputError(
                "shape",
                f"{field}.shape[{k}] = {dim} is larger than any request can be",
                f"{field}.shape[{k}]",
                f"<= {MAX_DIM}",
                dim,
            )


def _tensor(tensor: Any, field: str, bools: bool = True) -> tuple[str, list[int], np.ndarray]:
    name = _require(tensor, "name", str, field)
    shape = _require(tensor, "shape", list, field)
    datatype = _require(tensor, "datatype", str, field)
    data = tensor_data(tensor, field)
    check_shape(shape, field)
    if datatype == "BYTES":
        arr = _from_bytes(data, f"{field}.data")
    elif datatype in NUMERIC_TYPES:
        arr = _numbers(data, f"{field}.data", NUMERIC_TYPES[datatype] == "i", bools)
        if datatype == "FP32" or datatype == "FP16":
            with np.errstate(over="ignore"):  # overflow -> inf, caught by check_finite
                arr = arr.astype(np.float32 if datatype == "FP32" else np.float16)
    else:
        raise InputError(
            "dtype",
            f"{field}.datatype {datatype!r} is not supported",
            f"{field}.datatype",
            sorted([*NUMERIC_TYPES, "BYTES"]),
            datatype,
        )
    if arr.size != math.prod(shape):
        raise InputError(
            "shape",
            f"{field}: shape {shape} needs {math.prod(shape)} values, data has {arr.size}",
            f"{field}.data",
            math.prod(shape),
            arr.size,
        )
    return name, shape, arr.reshape(shape).astype(np.float64, copy=False)


def v2_head(doc: Any) -> tuple[list, list[Any] | None]:
    """The non-empty ``inputs`` list and the requested output names (None: all)."""
    inputs = _require(doc, "inputs", list, "")
    if not inputs:
        raise InputError("empty", "inputs is empty", "inputs", "at least one tensor", [])
    outputs = doc.get("outputs")
    wanted = None
    if isinstance(outputs, list):
        wanted = [o.get("name") for o in outputs if isinstance(o, dict)]
    return inputs, wanted


def v2_request(
    doc: Any, features: list[str], bools: bool = True
) -> tuple[np.ndarray, list[str] | None, Any]:
    """OIP v2 inference request -> (X, requested output names or None, request id)."""
    inputs, wanted = v2_head(doc)
    n_feat = len(features)
    if len(inputs) == 1 and (
        n_feat > 1 or _require(inputs[0], "name", str, "inputs[0]") not in features
    ):
        _, shape, arr = _tensor(inputs[0], "inputs[0]", bools)
        if len(shape) == 1 and shape[0] == n_feat:  # a single row given as a vector
            arr = arr.reshape(1, n_feat)
        elif len(shape) != 2 or shape[1] != n_feat:
            raise InputError(
                "shape",
                f"inputs[0] must have shape [rows, {n_feat}] (one column per feature), got {shape}",
                "inputs[0].shape",
                ["rows", n_feat],
                shape,
            )
        return _nonempty(arr, "inputs[0]"), wanted, doc.get("id")
    return _nonempty(_named(inputs, features, bools), "inputs"), wanted, doc.get("id")


def _named(inputs: list, features: list[str], bools: bool) -> np.ndarray:
    columns: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(inputs):
        name, shape, arr = _tensor(tensor, f"inputs[{i}]", bools)
        if name not in features:
            raise InputError(
                "unknown_feature",
                f"inputs[{i}]: unknown feature {name!r}",
                f"inputs[{i}].name",
                features,
                name,
            )
        if len(shape) == 2 and shape[1] == 1:
            arr = arr[:, 0]
        elif len(shape) != 1:
            raise InputError(
                "shape",
                f"inputs[{i}] ({name}) must have shape [rows] or [rows, 1]",
                f"inputs[{i}].shape",
                ["rows"],
                shape,
            )
        columns[name] = arr
    return _assemble(columns, features, "inputs")


def _assemble(columns: dict[str, np.ndarray], features: list[str], field: str) -> np.ndarray:
    missing = [f for f in features if f not in columns]
    if missing:
        raise InputError(
            "missing_feature",
            f"{field}: missing features {missing}",
            field,
            features,
            sorted(columns),
        )
    lengths = {name: col.shape[0] for name, col in columns.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(
            "shape",
            f"{field}: features have different row counts {lengths}",
            field,
            "equal lengths",
            lengths,
        )
    return np.column_stack([columns[f] for f in features]).astype(np.float64, copy=False)


def v1_request(doc: Any, features: list[str], bools: bool = True) -> np.ndarray:
    """KServe v1: ``{"instances": [[...], ...]}`` or a list of feature objects."""
    instances = _require(doc, "instances", list, "")
    if instances and isinstance(instances[0], dict):
        return records(instances, features, "instances", bools)
    arr = _numbers(instances, "instances", bools=bools)
    return _nonempty(_matrix(arr, features, "instances"), "instances")


def predict_request(doc: Any, features: list[str], bools: bool = True) -> np.ndarray:
    """``/predict``: a list of records, ``{"records": [...]}`` or ``{"columns": {name: [...]}}``."""
    if isinstance(doc, list):
        return records(doc, features, "records", bools)
    if isinstance(doc, dict) and "records" in doc:
        return records(_require(doc, "records", list, ""), features, "records", bools)
    if isinstance(doc, dict) and "columns" in doc:
        cols = _require(doc, "columns", dict, "")
        unknown = [k for k in cols if k not in features]
        if unknown:
            raise InputError(
                "unknown_feature",
                f"columns: unknown features {unknown}",
                "columns",
                features,
                unknown,
            )
        arrays = {}
        for name, values in cols.items():
            arr = _numbers(values, f"columns.{name}", bools=bools)
            if arr.ndim != 1:
                raise InputError(
                    "shape",
                    f"columns.{name} must be a flat list",
                    f"columns.{name}",
                    "array of numbers",
                    f"{arr.ndim}-D array",
                )
            arrays[name] = arr
        return _nonempty(_assemble(arrays, features, "columns"), "columns")
    raise InputError(
        "schema",
        "body must be a list of records, {'records': [...]} or {'columns': {...}}",
        "body",
        "records or columns",
        _kind_name(doc) if not isinstance(doc, dict) else sorted(doc)[:10],
    )


def records(rows: list, features: list[str], field: str, bools: bool = True) -> np.ndarray:
    check_records(rows, features, field)
    table = [[rec[f] for f in features] for rec in rows]
    arr = _numbers(table, field, bools=bools)
    return _nonempty(_matrix(arr, features, field), field)


def check_records(rows: list, features: list[str], field: str) -> None:
    """Every record an object with exactly the features as keys, or an error naming it."""
    wanted = set(features)
    for i, rec in enumerate(rows):
        if not isinstance(rec, dict):
            raise InputError(
                "schema",
                f"{field}[{i}] must be an object of feature values",
                f"{field}[{i}]",
                "object",
                _kind_name(rec),
            )
        if rec.keys() != wanted:
            missing = [f for f in features if f not in rec]
            unknown = [k for k in rec if k not in wanted]
            reason = "unknown_feature" if unknown else "missing_feature"
            raise InputError(
                reason,
                f"{field}[{i}]: "
                + "; ".join(
                    part
                    for part in (
                        missing and f"missing features {_short(missing)}",
                        unknown and f"unknown features {_short(unknown)}",
                    )
                    if part
                ),
                f"{field}[{i}]",
                features,
                sorted(rec),
            )


def _short(names: list[str], n: int = 5) -> str:
    return str(names[:n])[:-1] + (f", ... ({len(names)} in all)]" if len(names) > n else "]")


def _matrix(arr: np.ndarray, features: list[str], field: str) -> np.ndarray:
    n_feat = len(features)
    if (arr.ndim == 2 and arr.shape[1] == n_feat) or arr.size == 0:
        return arr.reshape(-1, n_feat).astype(np.float64, copy=False)
    raise InputError(
        "shape",
        f"{field} must be rows of {n_feat} values, got shape {list(arr.shape)}",
        field,
        ["rows", n_feat],
        list(arr.shape),
    )


def _nonempty(x: np.ndarray, field: str) -> np.ndarray:
    if x.shape[0] == 0:
        raise InputError(
            "empty", f"{field}: empty batch, no rows to predict", field, "at least one row", 0
        )
    return x


def check_finite(x: np.ndarray, allow_nan: bool) -> None:
    """Reject inf always and NaN unless the estimator handles missing values."""
    if np.isfinite(x).all():
        return
    bad = ~np.isfinite(x) if not allow_nan else np.isinf(x)
    if not bad.any():
        return
    row, col = (int(v) for v in np.argwhere(bad)[0])
    raise InputError(
        "non_finite",
        f"row {row}, column {col}: {x[row, col]} is not accepted by this model"
        + ("" if allow_nan else " (it does not handle missing values)"),
        f"row {row}, column {col}",
        "finite number",
        str(x[row, col]),
    )
