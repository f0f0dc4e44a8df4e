"""One-row OIP v2 request bodies, each in the form a real client sends.

- ``json``: one ``FP64`` tensor ``[1, F]`` in JSON (all-numeric models);
- ``binary-fp64`` / ``binary-fp32``: the same row with the binary tensor data
  extension (tritonclient's default ``set_data_from_numpy``): a JSON header of
  ``Inference-Header-Content-Length`` bytes, then the raw little-endian tensor;
- ``columns``: one input per column as MLServer's ``PandasCodec.encode_request``
  produces it (request ``content_type: pd``, each column ``[1, 1]``, strings as
  ``BYTES`` with ``content_type: str``): what MLServer's clients send, and what
  the predictor takes for mixed-type models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .models import Model

JSON = "application/json"
FORMS = ("json", "binary-fp64", "binary-fp32", "columns")


@dataclass(frozen=True)
class Payload:
    form: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    row: Any = None  # what the estimator gets for the same row (checked against the answer)


def build(model: Model, form: str) -> Payload:
    if form == "columns":
        return _columns(model)
    row = model.x[:1]
    if form == "json":
        doc = _doc([_tensor("input-0", list(row.shape), "FP64", data=row.ravel().tolist())])
        return Payload(form, json.dumps(doc).encode(), {"Content-Type": JSON}, row)
    if form in ("binary-fp64", "binary-fp32"):
        datatype = form.rsplit("-", 1)[1].upper()
        raw = row.astype("<f8" if datatype == "FP64" else "<f4")
        head = json.dumps(
            _doc(
                [
                    _tensor(
                        "input-0",
                        list(raw.shape),
                        datatype,
                        parameters={"binary_data_size": raw.nbytes},
                    )
                ]
            )
        ).encode()
        headers = {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(head)),
        }
        return Payload(form, head + raw.tobytes(), headers, raw)
    raise ValueError(f"unknown request form {form!r}; choose from {', '.join(FORMS)}")


def _columns(model: Model) -> Payload:
    frame = model.x.iloc[:1] if model.mixed else _frame(model)
    inputs = []
    for name in frame.columns:
        values = frame[name].tolist()
        if all(isinstance(v, str) for v in values):
            inputs.append(_tensor(name, [1, 1], "BYTES", data=values, parameters=_STR))
        else:
            inputs.append(_tensor(name, [1, 1], "FP64", data=[float(v) for v in values]))
    doc = {"parameters": {"content_type": "pd"}, **_doc(inputs)}
    return Payload("columns", json.dumps(doc).encode(), {"Content-Type": JSON}, frame)


_STR = {"content_type": "str"}


def _frame(model: Model) -> Any:
    import pandas as pd

    return pd.DataFrame(model.x[:1], columns=model.names)


def _tensor(
    name: str, shape: list[int], datatype: str, *, data: Any = None, parameters: Any = None
) -> dict:
    tensor: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype}
    if parameters is not None:
        tensor["parameters"] = parameters
    if data is not None:
        tensor["data"] = data
    return tensor


def _doc(inputs: list[dict]) -> dict:
    return {"inputs": inputs, "outputs": [{"name": "predict"}]}
