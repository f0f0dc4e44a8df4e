"""tritonclient, the most used OIP v2 client, as it is used in practice: its default call
sends binary tensor data and asks for binary outputs. Numeric and mixed-type models."""

from __future__ import annotations

import struct

import httpx
import numpy as np
import pytest
from tritonclient import http as httpclient


def _client(server):
    return httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))


@pytest.mark.parametrize("binary_data", [True, False], ids=["binary", "json"])
def test_numeric_model_binary_and_json(cancer_server, classifier, cancer, binary_data):
    x, _, _ = cancer
    client = _client(cancer_server)
    assert client.is_model_ready("cancer")
    tensor = httpclient.InferInput("input-0", list(x.shape), "FP64")
    tensor.set_data_from_numpy(x, binary_data=binary_data)
    outputs = [
        httpclient.InferRequestedOutput(name, binary_data=binary_data)
        for name in ("predict", "predict_proba")
    ]
    result = client.infer("cancer", [tensor], outputs=outputs)
    assert np.array_equal(result.as_numpy("predict"), classifier.predict(x))
    proba = result.as_numpy("predict_proba").reshape(-1, 2)
    assert np.allclose(proba, classifier.predict_proba(x), rtol=0, atol=1e-15)
    # the default call: binary inputs, no outputs named -> every output in binary
    tensor32 = httpclient.InferInput("input-0", list(x.shape), "FP32")
    tensor32.set_data_from_numpy(x.astype(np.float32))
    result = client.infer("cancer", [tensor32])
    assert np.array_equal(
        result.as_numpy("predict"), classifier.predict(x.astype(np.float32).astype(float))
    )


def test_mixed_model_one_binary_input_per_column(mixed_server, mixed, mixed_model):
    _, _, holdout = mixed
    rows = holdout[holdout["channel"].notna()].reset_index(drop=True)  # BYTES has no null
    client = _client(mixed_server)
    inputs = []
    for name in rows.columns:
        col = rows[name]
        if col.dtype == bool:
            data, datatype = col.to_numpy(), "BOOL"
        elif col.dtype.kind in "if":
            data, datatype = col.to_numpy(dtype=np.float64), "FP64"  # NaN income: missing
        else:
            data, datatype = col.to_numpy(dtype=object), "BYTES"
        tensor = httpclient.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    result = client.infer("churn", inputs)
    got = [v.decode() for v in result.as_numpy("predict")]
    assert got == mixed_model.predict(rows).tolist()
    proba = result.as_numpy("predict_proba").reshape(len(rows), 2)
    assert np.allclose(proba, mixed_model.predict_proba(rows), rtol=0, atol=1e-12)


def _binary_request(server, header: bytes, raw: bytes, length: int | None = None):
    return httpx.post(
        server.url + "/v2/models/churn/infer",
        content=header + raw,
        headers={
            "inference-header-content-length": str(len(header) if length is None else length),
            "content-type": "application/octet-stream",
        },
    )


def test_malformed_binary_requests_are_4xx_naming_the_input(mixed_server):
    header = (
        b'{"inputs": [{"name": "city", "shape": [1], "datatype": "BYTES",'
        b' "parameters": {"binary_data_size": %d}}]}'
    )
    bad_utf8 = struct.pack("<I", 2) + b"\xff\xfe"
    r = _binary_request(mixed_server, header % len(bad_utf8), bad_utf8)
    assert r.status_code == 422 and r.json()["field"] == "inputs[0][0]", r.text
    assert "UTF-8" in r.json()["error"]
    r = _binary_request(mixed_server, header % 100, bad_utf8)  # size past the data
    assert r.status_code == 422 and "binary_data_size" in r.json()["field"]
    r = _binary_request(mixed_server, header % 6, bad_utf8, length=10**9)
    assert r.status_code == 400 and r.json()["field"] == "inference-header-content-length"
    truncated = struct.pack("<I", 50) + b"abc"
    r = _binary_request(mixed_server, header % len(truncated), truncated)
    assert r.status_code == 422 and "runs past" in r.json()["error"]
