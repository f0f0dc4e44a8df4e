"""The OIP v2 binary tensor data extension (what tritonclient sends by default).

A request is a JSON header of ``Inference-Header-Content-Length`` bytes followed
by the raw tensors, in input order, each ``parameters.binary_data_size`` bytes:
little-endian numbers, one byte per BOOL, and for BYTES a 4-byte little-endian
length before each element. Numbers go straight from the bytes to NumPy, with
no JSON parsing. Outputs asked for with ``binary_data`` (or all of them with
``parameters.binary_data_output``) are answered the same way.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from .parsing import InputError, loads

HEADER = "inference-header-content-length"
DTYPES = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def header_length(value: str | None, body_size: int) -> int | None:
    """The JSON header's size from the request header (None: a plain JSON request)."""
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) > body_size:
        raise InputError(
            "schema",
            f"{HEADER} {value!r} is not a length within the {body_size}-byte body",
            HEADER,
            f"0 to {body_size}",
            value,
            400,
        )
    return int(value)


def request(body: bytes, json_size: int) -> Any:
    """Body with binary tensors -> the JSON document with each input's ``data`` filled in."""
    doc = loads(body[:json_size])
    raw = memoryview(body)[json_size:]
    offset = 0
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    for i, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            continue
        field = f"inputs[{i}]"
        if type(size) is not int or size < 0 or offset + size > len(raw):
            raise InputError(
                "shape",
                f"{field}.parameters.binary_data_size {size!r} runs past the "
                f"{len(raw)} bytes of binary data",
                f"{field}.parameters.binary_data_size",
                f"<= {len(raw) - offset}",
                size,
            )
        chunk = raw[offset : offset + size]
        offset += size
        tensor["data"] = _decode(chunk, tensor.get("datatype"), field)
    if offset != len(raw):
        raise InputError(
            "shape",
            f"{len(raw) - offset} bytes of binary data are not claimed by any input",
            "body",
            f"{offset} bytes after the header",
            f"{len(raw)} bytes",
        )
    return doc


def _decode(chunk: memoryview, datatype: Any, field: str) -> Any:
    if datatype == "BYTES":
        return _strings(bytes(chunk), field)
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InputError(
            "dtype",
            f"{field}.datatype {datatype!r} cannot carry binary data",
            f"{field}.datatype",
            sorted([*DTYPES, "BYTES"]),
            datatype,
        )
    width = np.dtype(dtype).itemsize
    if len(chunk) % width:
        raise InputError(
            "shape",
            f"{field}: {len(chunk)} bytes is not a whole number of {datatype} values",
            f"{field}.parameters.binary_data_size",
            f"a multiple of {width}",
            len(chunk),
        )
    arr = np.frombuffer(chunk, dtype=dtype)
    # BOOL goes on as JSON-like booleans, so it meets the same checks as JSON data
    return arr.tolist() if datatype == "BOOL" else arr.astype(np.float64)


def _strings(data: bytes, field: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise InputError(
                "shape", f"{field}: truncated BYTES length prefix", field, "4 bytes", "fewer"
            )
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + n > len(data):
            raise InputError(
                "shape", f"{field}: BYTES element {len(out)} runs past the data", field, n, "fewer"
            )
        try:
            out.append(data[pos : pos + n].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(
                "dtype",
                f"{field}[{len(out)}] is not UTF-8 text ({exc.reason} at byte {exc.start})",
                f"{field}[{len(out)}]",
                "UTF-8 text",
                "non-UTF-8 bytes",
            ) from None
        pos += n
    return out


def wants_binary(doc: Any) -> set[str] | bool:
    """Output names to answer in binary, or True for all of them."""
    if not isinstance(doc, dict):
        return set()
    params = doc.get("parameters")
    if isinstance(params, dict) and params.get("binary_data_output") is True:
        return True
    names = set()
    for out in doc.get("outputs") or []:
        p = out.get("parameters") if isinstance(out, dict) else None
        if isinstance(p, dict) and p.get("binary_data") is True:
            names.add(out.get("name"))
    return names


def encode(output: dict[str, Any]) -> bytes:
    """Replace an output's ``data`` by ``parameters.binary_data_size``; return its bytes."""
    data = output.pop("data")
    if output["datatype"] == "BYTES":
        parts = [str(v).encode() for v in (data.tolist() if hasattr(data, "tolist") else data)]
        raw = b"".join(struct.pack("<I", len(p)) + p for p in parts)
    else:
        raw = np.ascontiguousarray(data, dtype=DTYPES[output["datatype"]]).tobytes()
    output.setdefault("parameters", {})["binary_data_size"] = len(raw)
    return raw
