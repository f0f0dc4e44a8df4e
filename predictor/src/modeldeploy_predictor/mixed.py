"""Request bodies -> :class:`columns.Columns` for models with categorical or boolean features.

Every protocol is first reduced to one list of JSON values per feature
(OIP v2: one input per column; KServe v1 and ``/predict``: records, rows or
columns), then each list is checked and converted by the feature's kind:
numbers for numeric columns, strings (or numbers, for a numeric column
declared categorical) for categoricals, ``true`` / ``false`` for booleans,
``null`` only where the feature may be missing. Each error names the column,
the element, what was expected and what came.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .columns import Columns
from .parsing import (
    NUMERIC_TYPES,
    InputError,
    _kind_name,
    _require,
    check_records,
    check_shape,
    tensor_data,
    v2_head,
)
from .schema import BOOLEAN, Feature, Schema

STRING_TYPES = ("BYTES",)


def v2_request(doc: Any, schema: Schema) -> tuple[Columns, list[str] | None, Any]:
    """OIP v2 with one input per feature (as MLServer's pandas codec and KServe clients send)."""
    inputs, wanted = v2_head(doc)
    by_name = {f.name: f for f in schema.features}
    raw: dict[str, tuple[list, str]] = {}
    for i, tensor in enumerate(inputs):
        field = f"inputs[{i}]"
        name = _require(tensor, "name", str, field)
        shape = _require(tensor, "shape", list, field)
        datatype = _require(tensor, "datatype", str, field)
        data = tensor_data(tensor, field)
        if isinstance(data, np.ndarray):  # binary tensor extension: same checks as JSON
            data = data.tolist()
        feature = by_name.get(name)
        if feature is None:
            kinds = ", ".join(f"{f.name} ({f.kind})" for f in schema.features[:8])
            raise InputError(
                "unknown_feature",
                f"{field}: unknown feature {name!r}; this model takes one input per column: "
                f"{kinds}{', ...' if len(schema.features) > 8 else ''}",
                f"{field}.name",
                schema.names,
                name,
            )
        if name in raw:
            raise InputError(
                "schema",
                f"{field}: feature {name!r} is given twice",
                f"{field}.name",
                "one input per feature",
                name,
            )
        check_shape(shape, field)
        if len(shape) == 2 and shape[1] != 1:
            raise InputError(
                "shape",
                f"{field} ({name}) must have shape [rows] or [rows, 1], got {shape}",
                f"{field}.shape",
                ["rows"],
                shape,
            )
        _check_datatype(feature, datatype, field)
        if len(shape) == 2 and data and all(type(v) is list and len(v) == 1 for v in data):
            data = [v[0] for v in data]  # [[v], [v], ...] for a [rows, 1] tensor
        if len(data) != shape[0]:
            raise InputError(
                "shape",
                f"{field} ({name}): shape {shape} needs {shape[0]} values, data has {len(data)}",
                f"{field}.data",
                shape[0],
                len(data),
            )
        raw[name] = (data, f"{field}.data")
    return _columns(raw, schema, "inputs"), wanted, doc.get("id")


def _check_datatype(feature: Feature, datatype: str, field: str) -> None:
    if feature.kind == BOOLEAN:
        allowed: tuple[str, ...] = ("BOOL",)
    elif feature.string_values:
        allowed = STRING_TYPES
    else:
        allowed = tuple(NUMERIC_TYPES)
    if datatype not in allowed:
        raise InputError(
            "dtype",
            f"{field} ({feature.name}, {feature.kind}): datatype {datatype!r} does not fit; "
            f"expected {' or '.join(allowed) if len(allowed) < 3 else 'a numeric datatype'}",
            f"{field}.datatype",
            list(allowed),
            datatype,
        )


def v1_request(doc: Any, schema: Schema) -> Columns:
    """KServe v1: ``instances`` as objects (one key per feature) or as rows in feature order."""
    instances = _require(doc, "instances", list, "")
    return rows_request(instances, schema, "instances")


def predict_request(doc: Any, schema: Schema) -> Columns:
    """``/predict``: records (a list, or ``{"records": [...]}``) or ``{"columns": {...}}``."""
    if isinstance(doc, list):
        return rows_request(doc, schema, "records")
    if isinstance(doc, dict) and "records" in doc:
        return rows_request(_require(doc, "records", list, ""), schema, "records")
    if isinstance(doc, dict) and "columns" in doc:
        cols = _require(doc, "columns", dict, "")
        unknown = [k for k in cols if k not in schema.names]
        if unknown:
            raise InputError(
                "unknown_feature",
                f"columns: unknown features {unknown[:5]}",
                "columns",
                schema.names,
                unknown[:5],
            )
        raw = {}
        for name, values in cols.items():
            if not isinstance(values, list):
                raise InputError(
                    "schema",
                    f"columns.{name} must be an array of values",
                    f"columns.{name}",
                    "array",
                    _kind_name(values),
                )
            raw[name] = (values, f"columns.{name}")
        return _columns(raw, schema, "columns")
    raise InputError(
        "schema",
        "body must be a list of records, {'records': [...]} or {'columns': {...}}",
        "body",
        "records or columns",
        _kind_name(doc) if not isinstance(doc, dict) else sorted(doc)[:10],
    )


def rows_request(rows: list, schema: Schema, field: str) -> Columns:
    names = schema.names
    if rows and isinstance(rows[0], dict):
        check_records(rows, names, field)
        raw = {n: ([rec[n] for rec in rows], f"{field}[*].{n}") for n in names}
        return _columns(raw, schema, field)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise InputError(
                "shape",
                f"{field}[{i}] must be an object or a list of {len(names)} values "
                f"(in the order {names[:5]}{'...' if len(names) > 5 else ''})",
                f"{field}[{i}]",
                f"object or {len(names)} values",
                f"{len(row)} values" if isinstance(row, list) else _kind_name(row),
            )
    raw = {n: ([row[j] for row in rows], f"{field}[*][{j}]") for j, n in enumerate(names)}
    return _columns(raw, schema, field)


def _columns(raw: dict[str, tuple[list, str]], schema: Schema, field: str) -> Columns:
    missing = [n for n in schema.names if n not in raw]
    if missing:
        raise InputError(
            "missing_feature",
            f"{field}: missing features {missing[:5]}",
            field,
            schema.names,
            sorted(raw)[:20],
        )
    lengths = {name: len(values) for name, (values, _) in raw.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(
            "shape",
            f"{field}: features have different row counts {lengths}",
            field,
            "equal lengths",
            lengths,
        )
    if not next(iter(lengths.values())):
        raise InputError(
            "empty", f"{field}: empty batch, no rows to predict", field, "at least one row", 0
        )
    return Columns(tuple(convert(f, *raw[f.name]) for f in schema.features))


def convert(feature: Feature, values: list, field: str) -> np.ndarray:
    """One column of JSON values -> its typed array, or an error naming the bad element."""
    if feature.kind == BOOLEAN:
        return _booleans(feature, values, field)
    if feature.string_values:
        return _strings(feature, values, field)
    return _numbers(feature, values, field)


def _numbers(feature: Feature, values: list, field: str) -> np.ndarray:
    # Fast path: plain numbers (no null, bool, string or list) convert in one call.
    if all(type(v) is float or type(v) is int for v in values):
        try:
            return np.asarray(values, dtype=np.float64)
        except OverflowError:
            pass  # an integer beyond float range: named below
    out = np.empty(len(values))
    for i, v in enumerate(values):
        t = type(v)
        if t is float or t is int:
            out[i] = v
            if np.isinf(out[i]):
                raise _bad(feature, field, i, v, "a finite number", "non_finite")
        elif v is None:
            _null(feature, field, i)
            out[i] = np.nan
        else:
            raise _bad(feature, field, i, v, "a number")
    return out


def _strings(feature: Feature, values: list, field: str) -> np.ndarray:
    for i, v in enumerate(values):
        if type(v) is not str:
            if v is None:
                _null(feature, field, i)
            else:
                raise _bad(feature, field, i, v, "a string")
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _booleans(feature: Feature, values: list, field: str) -> np.ndarray:
    has_null = False
    for i, v in enumerate(values):
        if v is not True and v is not False:
            if v is None:
                _null(feature, field, i)
                has_null = True
            else:
                raise _bad(feature, field, i, v, "true or false")
    if not has_null:
        return np.array(values, dtype=bool)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _null(feature: Feature, field: str, i: int) -> None:
    if not feature.nullable:
        raise InputError(
            "missing_value",
            f"column {feature.name!r} ({feature.kind}): {field}[{i}] is null, but this model "
            "does not take missing values in it (the reference had none)",
            f"{field}[{i}]",
            _expected(feature),
            "null",
        )


def _bad(feature: Feature, field: str, i: int, v: Any, expected: str, reason: str = "dtype"):
    what = "an array" if isinstance(v, list) else "an object" if isinstance(v, dict) else None
    got = what or f"{_kind_name(v)} {v!r:.40}"
    return InputError(
        reason,
        f"column {feature.name!r} ({feature.kind}): {field}[{i}] must be {expected}, got {got}",
        f"{field}[{i}]",
        _expected(feature),
        _kind_name(v),
    )


def _expected(feature: Feature) -> str:
    if feature.kind == BOOLEAN:
        kind = "boolean"
    elif feature.string_values:
        kind = "string"
    else:
        kind = "number"
    return kind + (" or null" if feature.nullable else "")
