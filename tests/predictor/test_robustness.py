"""Predictor findings of HTTP robustness testing: absurd shapes are 4xx before any
allocation and counted, booleans never pass as numbers, and a huge request does not
stall the others."""

from __future__ import annotations

import concurrent.futures
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from modeldeploy_predictor.bundle import build_bundle


def _count(server, endpoint: str, code: str) -> float:
    total = 0.0
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith("modeldeploy_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            if labels.get("endpoint") == endpoint and labels.get("code") == code:
                total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize(
    "shape,field",
    [([4611686018427387904, 0], "inputs[0].shape[0]"), ([1] * 65, "inputs[0].shape")],
    ids=["huge-dim", "65-dims"],
)
def test_absurd_shapes_are_422_json_naming_the_field_and_counted(cancer_server, shape, field):
    before = _count(cancer_server, "v2_infer", "422")
    body = {"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP64", "data": []}]}
    r = httpx.post(cancer_server.url + "/v2/models/cancer/infer", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    assert r.json()["field"] == field and r.json()["reason"] == "shape"
    assert _count(cancer_server, "v2_infer", "422") == before + 1


def test_booleans_among_numbers_are_refused_by_every_protocol(cancer_server, cancer):
    x, _, names = cancer
    row = x[0].tolist()
    row[1] = True
    bodies = {
        "/v2/models/cancer/infer": {
            "inputs": [{"name": "input-0", "shape": [1, 30], "datatype": "FP64", "data": row}]
        },
        "/v1/models/cancer:predict": {"instances": [row]},
        "/predict": [dict(zip(names, row, strict=True))],
    }
    for path, body in bodies.items():
        r = httpx.post(cancer_server.url + path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["got"] == "boolean", (path, r.json())


def test_every_answer_is_counted_with_its_code(cancer_server):
    url = cancer_server.url
    cases = [
        ("/predict", b"{", "400"),
        ("/predict", b"[]", "422"),
        ("/v2/models/nope/infer", b"{}", "404"),
    ]
    for path, body, code in cases:
        endpoint = "predict" if path == "/predict" else "v2_infer"
        before = _count(cancer_server, endpoint, code)
        r = httpx.post(url + path, content=body, headers={"content-type": "application/json"})
        assert str(r.status_code) == code
        assert _count(cancer_server, endpoint, code) == before + 1, (path, code)
    before = _count(cancer_server, "predict", "415")
    assert (
        httpx.post(url + "/predict", content=b"a", headers={"content-type": "text/csv"}).status_code
        == 415
    )
    assert _count(cancer_server, "predict", "415") == before + 1


def test_a_million_row_request_does_not_stall_small_ones(serve, tmp_path, monkeypatch, helpers):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the server gets it on PYTHONPATH
    from faulty import SLOW_TRIGGER, Slow

    x = np.random.default_rng(0).normal(size=(50, 3)) + 3
    est = Slow().fit(x, np.arange(50) % 2)
    bundle = build_bundle(est, x, "slow", "1", tmp_path / "slow", feature_names=list("abc"))
    marker = tmp_path / "predict-started"
    rows = 1_000_000
    # [7, 1, 2] a million times: the slow model sleeps on it (and touches the marker)
    data = b",".join([b"%d,1,2" % int(SLOW_TRIGGER)] * rows)
    big = (
        b'{"inputs": [{"name": "input-0", "shape": [%d, 3], "datatype": "FP64", "data": [%s]}]}'
        % (rows, data)
    )
    with serve(
        bundle, "--max-body-bytes", str(len(big) + 1), env={"SLOW_MARKER": str(marker)}
    ) as server:
        marker.unlink(missing_ok=True)
        with (
            httpx.Client(base_url=server.url, timeout=120) as client,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            huge = pool.submit(
                client.post,
                "/v2/models/slow/infer",
                content=big,
                headers={"content-type": "application/json"},
            )
            helpers.wait_for(marker.exists, 60, 0.01, "the huge request to reach predict")
            small = client.post("/predict", json=[{"a": 1.0, "b": 0, "c": 0}])
            assert small.status_code == 200 and small.json()["predictions"] == [1]
            assert not huge.done(), "the small request waited for the huge one"
            answer = huge.result()
        assert answer.status_code == 200, answer.text[:300]
        out = answer.json()["outputs"][0]
        assert out["shape"] == [rows] and out["data"][0] == 1 and len(out["data"]) == rows
