"""The predictor as a real process on loopback: endpoints, bad input, metrics, log, shutdown."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess

import httpx
import numpy as np
import orjson
import pytest
from modeldeploy_predictor.bundle import build_bundle


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
            found = True
    if not found:
        raise KeyError(f"{name} {labels} not in metrics")
    return total


def v2_body(x: np.ndarray) -> dict:
    return {
        "inputs": [
            {"name": "input-0", "shape": list(x.shape), "datatype": "FP64", "data": x.tolist()}
        ]
    }


def test_health_metadata_and_docs(cancer_server, cancer):
    _, _, names = cancer
    url = cancer_server.url
    assert httpx.get(url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(url + "/v2/health/ready").json() == {"ready": True}
    assert httpx.get(url + "/v2/models/cancer/ready").json() == {"name": "cancer", "ready": True}
    assert httpx.get(url + "/v2/models/cancer/versions/1.0.0/ready").status_code == 200
    assert httpx.get(url + "/v1/models/cancer").json()["ready"] is True
    meta = httpx.get(url + "/v2/models/cancer").json()
    assert meta["name"] == "cancer" and meta["versions"] == ["1.0.0"]
    assert meta["inputs"][0]["shape"] == [-1, 30] and meta["parameters"]["features"] == names
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert httpx.get(url + "/v2/models/cancer/versions/1.0.0").json() == meta
    assert httpx.get(url + "/v2").json()["name"] == "modeldeploy-predictor"
    for path in ("/v2/models/other", "/v2/models/cancer/versions/9", "/v2/models/other/ready"):
        r = httpx.get(url + path)
        assert r.status_code == 404 and r.json()["reason"].endswith("not_found"), path
    spec = httpx.get(url + "/openapi.json").json()
    assert "/v2/models/{name}/infer" in spec["paths"] and "/predict" in spec["paths"]
    assert httpx.get(url + "/docs").status_code == 200


def test_predictions_equal_estimator_for_every_protocol(cancer_server, classifier, cancer):
    x, _, names = cancer
    url = cancer_server.url
    want, want_p = classifier.predict(x), classifier.predict_proba(x)
    r = httpx.post(url + "/v2/models/cancer/infer", json=v2_body(x))
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["predict"]["datatype"] == "INT64" and out["predict"]["shape"] == [len(x)]
    assert np.array_equal(out["predict"]["data"], want)
    assert out["predict_proba"]["shape"] == [len(x), 2]
    assert np.allclose(
        np.reshape(out["predict_proba"]["data"], (-1, 2)), want_p, rtol=0, atol=1e-15
    )
    named = {
        "inputs": [
            {"name": n, "shape": [len(x)], "datatype": "FP64", "data": x[:, j].tolist()}
            for j, n in enumerate(names)
        ]
    }
    r = httpx.post(url + "/v2/models/cancer/versions/1.0.0/infer", json=named)
    assert np.array_equal(r.json()["outputs"][0]["data"], want)
    only = {**v2_body(x[:5]), "outputs": [{"name": "predict"}]}
    r = httpx.post(url + "/v2/models/cancer/infer", json=only)
    assert [o["name"] for o in r.json()["outputs"]] == ["predict"]
    assert np.array_equal(r.json()["outputs"][0]["data"], want[:5])
    r = httpx.post(url + "/v1/models/cancer:predict", json={"instances": x.tolist()})
    assert r.status_code == 200 and np.array_equal(r.json()["predictions"], want)
    recs = [dict(zip(names, row, strict=True)) for row in x[:50].tolist()]
    r = httpx.post(url + "/predict", json=recs)
    assert np.array_equal(r.json()["predictions"], want[:50])
    assert r.json()["classes"] == [0, 1]
    cols = {n: x[:50, j].tolist() for j, n in enumerate(names)}
    r = httpx.post(url + "/predict", json={"columns": cols})
    assert np.array_equal(r.json()["predictions"], want[:50])

    # one row at a time, concurrently (so they are micro-batched), still equal
    async def one_by_one():
        async with httpx.AsyncClient(base_url=url) as client:
            rs = await asyncio.gather(
                *(
                    client.post("/v1/models/cancer:predict", json={"instances": [row]})
                    for row in x[:64].tolist()
                )
            )
        return [r.json()["predictions"][0] for r in rs]

    assert np.array_equal(asyncio.run(one_by_one()), want[:64])


def test_regressor_served_values_equal_estimator(
    serve, regressor_bundle, regressor, regression_data
):
    x, _, _ = regression_data
    with serve(regressor_bundle) as server:
        r = httpx.post(server.url + "/v2/models/reg/infer", json=v2_body(x[:100]))
        out = r.json()["outputs"]
        assert [o["name"] for o in out] == ["predict"] and out[0]["datatype"] == "FP64"
        assert np.array_equal(out[0]["data"], regressor.predict(x[:100]))
        r = httpx.post(server.url + "/v1/models/reg:predict", json={"instances": x[:10].tolist()})
        assert np.array_equal(r.json()["predictions"], regressor.predict(x[:10]))
        text = httpx.get(server.url + "/metrics").text
        assert metric(text, "modeldeploy_prediction_value_count", model="reg") == 110


def _bad_requests(x, names):
    ok_row = dict(zip(names, x[0].tolist(), strict=True))
    json_ = {"content-type": "application/json"}
    return [
        ("not json", "/predict", b"{not json", json_, 400, "invalid_json"),
        ("empty body", "/predict", b"", json_, 400, "invalid_json"),
        ("content type", "/predict", b"[]", {"content-type": "text/csv"}, 415, "content_type"),
        (
            "shape",
            "/v2/models/cancer/infer",
            orjson.dumps(
                {
                    "inputs": [
                        {"name": "x", "shape": [1, 29], "datatype": "FP64", "data": [0.0] * 29}
                    ]
                }
            ),
            json_,
            422,
            "shape",
        ),
        (
            "shape/data mismatch",
            "/v2/models/cancer/infer",
            orjson.dumps(
                {
                    "inputs": [
                        {"name": "x", "shape": [2, 30], "datatype": "FP64", "data": [0.0] * 30}
                    ]
                }
            ),
            json_,
            422,
            "shape",
        ),
        (
            "unknown feature",
            "/predict",
            orjson.dumps([{**ok_row, "bogus": 1}]),
            json_,
            422,
            "unknown_feature",
        ),
        (
            "missing feature",
            "/predict",
            orjson.dumps([{k: v for k, v in ok_row.items() if k != names[3]}]),
            json_,
            422,
            "missing_feature",
        ),
        (
            "dtype",
            "/v1/models/cancer:predict",
            orjson.dumps({"instances": [["x"] * 30]}),
            json_,
            422,
            "dtype",
        ),
        (
            "datatype",
            "/v2/models/cancer/infer",
            orjson.dumps(
                {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "BOOL", "data": [1] * 30}]}
            ),
            json_,
            422,
            "dtype",
        ),
        (
            "nan",
            "/v2/models/cancer/infer",
            orjson.dumps(
                {
                    "inputs": [
                        {"name": "x", "shape": [1, 30], "datatype": "BYTES", "data": ["nan"] * 30}
                    ]
                }
            ),
            json_,
            422,
            "non_finite",
        ),
        (
            "inf",
            "/v2/models/cancer/infer",
            orjson.dumps(
                {
                    "inputs": [
                        {"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [1e39] * 30}
                    ]
                }
            ),
            json_,
            422,
            "non_finite",
        ),
        ("empty batch", "/v1/models/cancer:predict", b'{"instances": []}', json_, 422, "empty"),
        ("empty records", "/predict", b"[]", json_, 422, "empty"),
        ("too large", "/predict", b"[" + b"1," * 150_000 + b"1]", json_, 413, "too_large"),
        (
            "unknown model",
            "/v2/models/nope/infer",
            orjson.dumps(v2_body(x[:1])),
            json_,
            404,
            "model_not_found",
        ),
    ]


def test_every_bad_input_is_a_clear_4xx_and_counted(cancer_server, cancer):
    x, _, names = cancer
    url = cancer_server.url
    before = httpx.get(url + "/metrics").text
    for what, path, body, headers, status, reason in _bad_requests(x, names):
        r = httpx.post(url + path, content=body, headers=headers)
        assert r.status_code == status, (what, r.text)
        doc = r.json()
        assert doc["reason"] == reason and doc["error"], what
        if status == 422:
            assert "field" in doc and "expected" in doc and "got" in doc, (what, doc)
    after = httpx.get(url + "/metrics").text
    for reason in (
        "invalid_json",
        "content_type",
        "shape",
        "dtype",
        "non_finite",
        "empty",
        "too_large",
    ):
        grown = (
            metric(after, "modeldeploy_input_errors_total", reason=reason)
            - metric(before, "modeldeploy_input_errors_total", reason=reason)
            if f'reason="{reason}"' in before
            else metric(after, "modeldeploy_input_errors_total", reason=reason)
        )
        assert grown >= 1, reason
    # still serving
    r = httpx.post(url + "/v1/models/cancer:predict", json={"instances": x[:2].tolist()})
    assert r.status_code == 200


def test_chunked_oversize_body_is_413(cancer_server):
    def chunks():
        yield b"["
        for _ in range(100):
            yield b"1," * 5000
        yield b"1]"

    r = httpx.post(
        cancer_server.url + "/predict",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["reason"] == "too_large"


def test_metrics_carry_contract_labels_and_drift(cancer_server, cancer):
    x, _, _ = cancer
    url = cancer_server.url
    httpx.post(url + "/v2/models/cancer/infer", json=v2_body(x[:40]))
    text = httpx.get(url + "/metrics").text
    labels = {"model": "cancer", "version": "1.0.0", "track": "canary", "revision": "cancer-abc"}
    assert (
        metric(text, "modeldeploy_requests_total", endpoint="v2_infer", code="200", **labels) >= 1
    )
    assert (
        metric(text, "modeldeploy_request_duration_seconds_count", endpoint="v2_infer", **labels)
        >= 1
    )
    assert metric(text, "modeldeploy_batch_size_count", **labels) >= 1
    assert metric(text, "modeldeploy_predicted_rows_total", **labels) >= 40
    assert metric(text, "modeldeploy_predicted_class_total", **labels) >= 40
    assert metric(text, "modeldeploy_drift_window_rows", **labels) >= 40
    assert metric(text, "modeldeploy_feature_drift_psi", feature="mean_radius", **labels) >= 0
    assert metric(text, "modeldeploy_feature_drift_psi_max", **labels) >= 0
    assert metric(text, "modeldeploy_prediction_drift_psi", **labels) >= 0
    assert (
        metric(
            text,
            "modeldeploy_model_info",
            sklearn_version=__import__("sklearn").__version__,
            **labels,
        )
        == 1
    )
    assert metric(text, "modeldeploy_model_load_seconds", **labels) > 0
    assert metric(text, "modeldeploy_prediction_log_dropped_total", **labels) == 0
    for line in text.splitlines():  # every series carries the four contract labels
        if line.startswith("modeldeploy_"):
            assert all(f'{k}="' in line for k in labels), line


def test_prediction_log_records_request_id(cancer_server, cancer, helpers):
    x, _, _ = cancer
    r = httpx.post(
        cancer_server.url + "/v1/models/cancer:predict",
        json={"instances": x[:2].tolist()},
        headers={"x-request-id": "trace-42"},
    )
    assert r.headers["x-request-id"] == "trace-42"
    generated = httpx.post(
        cancer_server.url + "/v1/models/cancer:predict", json={"instances": x[:1].tolist()}
    )
    assert generated.headers["x-request-id"]
    log = cancer_server.log.parent / "predictions.jsonl"

    def record():
        if not log.exists():
            return None
        for line in log.read_text().splitlines():
            doc = json.loads(line)
            if doc["request_id"] == "trace-42":
                return doc
        return None

    doc = helpers.wait_for(record, 10, what="prediction log record")
    assert (
        doc["version"] == "1.0.0" and doc["track"] == "canary" and doc["endpoint"] == "v1_predict"
    )
    assert np.allclose(doc["inputs"], x[:2]) and len(doc["outputs"]) == 2 and doc["latency_ms"] >= 0


def test_model_exception_is_500_with_class_and_server_survives(serve, tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the server gets it on PYTHONPATH
    from faulty import TRIGGER, Faulty

    x = np.random.default_rng(0).normal(size=(50, 3)) + 3
    est = Faulty().fit(x, np.arange(50) % 2)
    bundle = build_bundle(est, x, "faulty", "1", tmp_path / "faulty", feature_names=["a", "b", "c"])
    with serve(bundle) as server:
        bad = httpx.post(server.url + "/predict", json=[{"a": TRIGGER, "b": 0, "c": 0}])
        assert bad.status_code == 500
        assert bad.json()["error_class"] == "ZeroDivisionError" and "trigger" in bad.json()["error"]

        async def mixed():  # a failing request batched with good ones fails alone
            async with httpx.AsyncClient(base_url=server.url) as client:
                bodies = [[{"a": v, "b": 0, "c": 0}] for v in (1.0, TRIGGER, -1.0, 2.0)]
                return await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))

        codes = [r.status_code for r in asyncio.run(mixed())]
        assert codes == [200, 500, 200, 200]
        text = httpx.get(server.url + "/metrics").text
        assert metric(text, "modeldeploy_model_errors_total", error="ZeroDivisionError") >= 2
        assert metric(text, "modeldeploy_requests_total", endpoint="predict", code="500") >= 2
        assert httpx.post(server.url + "/predict", json=[{"a": 1, "b": 0, "c": 0}]).json()[
            "predictions"
        ] == [1]


def test_error_series_exist_at_zero_before_any_request(serve, classifier_bundle):
    """increase() sees a rise only between two samples of one series: a 5xx series
    born with the first failures hid them from the error-rate analysis (the soak
    promoted a candidate that failed a fifth of its requests, measured 0 errors).
    The request series of the inference endpoints exist at 0 from the start."""
    with serve(classifier_bundle) as server:
        text = httpx.get(server.url + "/metrics").text
        for endpoint in ("predict", "v1_predict", "v2_infer"):
            for code in ("200", "500", "503"):
                assert metric(text, "modeldeploy_requests_total", endpoint=endpoint, code=code) == 0


def test_env_configuration_and_no_batching(serve, classifier_bundle, cancer):
    x, _, _ = cancer
    env = {
        "MODELDEPLOY_MODEL_NAME": "fraud",
        "MODELDEPLOY_MODEL_VERSION": "7",
        "MODELDEPLOY_TRACK": "shadow",
    }
    with serve(classifier_bundle, "--no-batching", env=env) as server:
        assert httpx.get(server.url + "/v2/models/fraud").json()["versions"] == ["7"]
        r = httpx.post(server.url + "/v2/models/fraud/infer", json=v2_body(x[:3]))
        assert r.json()["model_version"] == "7"
        text = httpx.get(server.url + "/metrics").text
        assert (
            metric(text, "modeldeploy_requests_total", model="fraud", track="shadow", version="7")
            == 1
        )


def test_refused_bundle_exits_with_message(cli, classifier_bundle, tmp_path):
    import shutil

    bundle = shutil.copytree(classifier_bundle, tmp_path / "b")
    (bundle / "model.joblib").write_bytes(b"corrupt")
    done = subprocess.run(
        [str(cli), "serve", "--bundle", str(bundle), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "sha256 mismatch" in done.stderr and "model.joblib" in done.stderr


def test_sigterm_drains_in_flight_requests(serve, tmp_path, monkeypatch, helpers):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from faulty import SLOW_TRIGGER, Slow

    x = np.random.default_rng(0).normal(size=(50, 3)) + 3
    bundle = build_bundle(
        Slow().fit(x, np.arange(50) % 2),
        x,
        "slow",
        "1",
        tmp_path / "slow",
        feature_names=list("abc"),
    )
    marker = tmp_path / "predict-started"
    with serve(bundle, "--predict-in-thread", env={"SLOW_MARKER": str(marker)}) as server:
        marker.unlink(missing_ok=True)  # the warm-up does not use the trigger, but be sure

        async def slow_request_then_term():
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                task = asyncio.ensure_future(
                    client.post("/predict", json=[{"a": SLOW_TRIGGER, "b": 0, "c": 0}])
                )
                await asyncio.to_thread(
                    helpers.wait_for, marker.exists, 20, 0.01, "predict to start"
                )
                server.proc.send_signal(signal.SIGTERM)
                return await task

        response = asyncio.run(slow_request_then_term())
        assert response.status_code == 200 and response.json()["predictions"] == [1]
        # uvicorn re-raises SIGTERM after a clean shutdown, so the exit status is -SIGTERM
        assert server.proc.wait(30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.output()


@pytest.mark.parametrize("path", ["/v2/models/cancer/infer", "/predict"])
def test_wrong_method_is_405_json(cancer_server, path):
    assert httpx.get(cancer_server.url + path).status_code == 405
