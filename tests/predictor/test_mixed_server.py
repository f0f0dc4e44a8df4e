"""A mixed-type Pipeline (strings, numbers, booleans, missing values, string classes) served
by a real predictor process: every protocol equals the estimator, nulls, unseen categories,
categorical drift and precise 4xx errors."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from modeldeploy_predictor.bundle import build_bundle

V2_TYPES = {"age": "INT64", "city": "BYTES", "plan": "BYTES", "channel": "BYTES", "member": "BOOL"}


def v2_columns(records: list[dict], nested: bool = False) -> dict:
    """One input per column, as MLServer's pandas codec / KServe v2 clients send them."""
    inputs = []
    for name in records[0]:
        data = [r[name] for r in records]
        shape = [len(data), 1] if nested else [len(data)]
        inputs.append(
            {
                "name": name,
                "shape": shape,
                "datatype": V2_TYPES.get(name, "FP64"),
                "data": [[v] for v in data] if nested else data,
            }
        )
    return {"inputs": inputs}


def _records(frame) -> list[dict]:
    """Rows as JSON objects: missing values as null, NumPy scalars as plain Python."""
    return [
        {k: (None if v != v else v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in frame.astype(object).to_dict("records")
    ]


def _post(server, path: str, body) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=30)


def test_metadata_lists_one_input_per_column(mixed_server):
    meta = httpx.get(mixed_server.url + "/v2/models/churn").json()
    inputs = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert inputs == {
        "age": "FP64",
        "income": "FP64",
        "tenure": "FP64",
        "balance": "FP64",
        "score": "FP64",
        "city": "BYTES",
        "plan": "BYTES",
        "channel": "BYTES",
        "member": "BOOL",
    }
    assert meta["outputs"][0]["datatype"] == "BYTES"
    kinds = {f["name"]: f["kind"] for f in meta["parameters"]["schema"]}
    assert kinds["city"] == "categorical" and kinds["member"] == "boolean"


def test_every_protocol_equals_the_estimator_on_held_out_rows(mixed_server, mixed, mixed_model):
    _, _, holdout = mixed
    want = mixed_model.predict(holdout).tolist()
    want_p = mixed_model.predict_proba(holdout)
    records = _records(holdout)
    assert any(r["income"] is None for r in records) and any(r["channel"] is None for r in records)
    names = list(holdout.columns)
    answers = {}
    for nested in (False, True):
        r = _post(mixed_server, "/v2/models/churn/infer", v2_columns(records, nested))
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}
        assert out["predict"]["datatype"] == "BYTES"
        answers[f"v2 nested={nested}"] = out["predict"]["data"]
        proba = np.reshape(out["predict_proba"]["data"], out["predict_proba"]["shape"])
        assert np.allclose(proba, want_p, rtol=0, atol=1e-12)
    r = _post(mixed_server, "/v1/models/churn:predict", {"instances": records})
    answers["v1 objects"] = r.json()["predictions"]
    rows = [[rec[n] for n in names] for rec in records]
    answers["v1 rows"] = _post(
        mixed_server, "/v1/models/churn:predict", {"instances": rows}
    ).json()["predictions"]
    for body in (
        records,
        {"records": records},
        {"columns": {n: [rec[n] for rec in records] for n in names}},
    ):
        r = _post(mixed_server, "/predict", body)
        assert r.status_code == 200, r.text
        doc = r.json()
        answers[f"predict {type(body).__name__} {list(body)[:1]}"] = doc["predictions"]
        assert doc["classes"] == ["churn", "stay"]
        assert np.allclose(doc["probabilities"], want_p, rtol=0, atol=1e-12)
    for label, got in answers.items():
        assert got == want, label


def test_null_is_missing_only_where_the_reference_had_missing_values(
    mixed_server, mixed, mixed_model
):
    _, _, holdout = mixed
    row = _records(holdout.head(1))[0]
    allowed = {**row, "income": None, "channel": None}
    r = _post(mixed_server, "/predict", [allowed])
    assert r.status_code == 200, r.text
    frame = holdout.head(1).copy()
    frame["income"] = np.nan
    frame["channel"] = np.array([np.nan], dtype=object)  # as pandas reads a gap in text
    assert r.json()["predictions"] == mixed_model.predict(frame).tolist()
    for column in ("city", "age", "member"):
        r = _post(mixed_server, "/predict", [{**row, column: None}])
        assert r.status_code == 422, (column, r.text)
        body = r.json()
        assert body["reason"] == "missing_value" and column in body["error"]
        assert body["got"] == "null" and "null" not in body["expected"]


def test_unseen_category_is_predicted_by_an_ignoring_pipeline_and_counted(
    mixed_server, mixed, mixed_model, helpers
):
    _, _, holdout = mixed
    row = {**_records(holdout.head(1))[0], "city": "marseille"}
    before = _unseen(mixed_server, helpers)
    r = _post(mixed_server, "/v1/models/churn:predict", {"instances": [row, row]})
    assert r.status_code == 200, r.text
    frame = holdout.head(1).copy()
    frame["city"] = "marseille"
    assert r.json()["predictions"] == mixed_model.predict(frame).tolist() * 2
    helpers.wait_for(
        lambda: _unseen(mixed_server, helpers) >= before + 2, 10, what="unseen counted"
    )


def _unseen(server, helpers) -> float:
    text = httpx.get(server.url + "/metrics").text
    try:
        return helpers.metric(text, "modeldeploy_unseen_categories_total", feature="city")
    except KeyError:
        return 0.0


def test_unseen_category_refused_by_the_pipeline_is_a_422_naming_column_and_value(
    serve, mixed, tmp_path, tabular, helpers
):
    train, y, holdout = mixed
    strict = tabular.pipeline(handle_unknown="error").fit(train, y)
    bundle = build_bundle(strict, train, "churn", "2.0.0", tmp_path / "strict")
    good = _records(holdout.head(3))
    bad = {**good[0], "plan": "enterprise"}
    with serve(bundle) as server:
        for path, body in (
            ("/predict", [good[1], bad]),
            ("/v1/models/churn:predict", {"instances": [bad]}),
            ("/v2/models/churn/infer", v2_columns([bad, good[2]])),
        ):
            r = _post(server, path, body)
            assert r.status_code == 422, (path, r.text)
            doc = r.json()
            assert doc["reason"] == "unknown_category" and doc["field"] == "plan"
            assert doc["got"] == "enterprise" and "enterprise" in doc["error"]
        r = _post(server, "/predict", good)
        assert (
            r.status_code == 200
            and r.json()["predictions"] == strict.predict(holdout.head(3)).tolist()
        )
        text = httpx.get(server.url + "/metrics").text
        assert (
            helpers.metric(text, "modeldeploy_input_errors_total", reason="unknown_category") == 3
        )
        assert (
            helpers.metric(text, "modeldeploy_requests_total", endpoint="predict", code="422") == 1
        )
        with pytest.raises(KeyError):
            helpers.metric(text, "modeldeploy_model_errors_total")


def test_categorical_drift_missing_and_unseen_shares(serve, mixed_bundle, mixed, helpers):
    _, _, holdout = mixed
    records = _records(holdout)
    shifted = [
        {**r, "city": "nice", "plan": "bogus" if i % 4 == 0 else r["plan"]}
        for i, r in enumerate(records)
    ]
    with serve(mixed_bundle, "--drift-interval", "0.1") as server:
        assert _post(server, "/predict", records).status_code == 200

        def psi(feature: str) -> float:
            text = httpx.get(server.url + "/metrics").text
            return helpers.metric(text, "modeldeploy_feature_drift_psi", feature=feature)

        helpers.wait_for(lambda: psi("city") == psi("city"), 10, what="drift computed")  # not NaN
        assert psi("city") < 0.1 and psi("plan") < 0.1
        for _ in range(4):  # shifted traffic outweighs the reference-like rows in the window
            assert _post(server, "/predict", shifted).status_code == 200
        text = httpx.get(server.url + "/metrics").text
        assert helpers.metric(text, "modeldeploy_feature_drift_psi", feature="city") > 1.0
        assert helpers.metric(text, "modeldeploy_feature_drift_psi", feature="plan") > 0.2
        assert helpers.metric(text, "modeldeploy_feature_drift_psi_max") >= psi("city")
        rows = helpers.metric(text, "modeldeploy_drift_window_rows")
        assert rows == 5 * len(records)
        unseen = helpers.metric(text, "modeldeploy_feature_unseen_share", feature="plan")
        assert unseen == pytest.approx(4 * len(records[::4]) / rows)
        assert helpers.metric(text, "modeldeploy_feature_unseen_share", feature="city") == 0
        missing = sum(r["channel"] is None for r in records) * 5 / rows
        assert helpers.metric(
            text, "modeldeploy_feature_missing_share", feature="channel"
        ) == pytest.approx(missing)
        pred_psi = helpers.metric(text, "modeldeploy_prediction_drift_psi")
        assert np.isfinite(pred_psi)
        assert helpers.metric(text, "modeldeploy_predicted_class_total", **{"class": "churn"}) > 0


BAD = [
    # (path, body builder, status, field fragment, column)
    ("/predict", lambda r: [{**r, "age": "old"}], 422, "age", "age"),
    ("/predict", lambda r: [{**r, "city": 3}], 422, "city", "city"),
    ("/predict", lambda r: [{**r, "city": ["a", "b"]}], 422, "city", "city"),
    ("/predict", lambda r: [{**r, "score": [1.0]}], 422, "score", "score"),
    ("/predict", lambda r: [{**r, "member": 1}], 422, "member", "member"),
    ("/predict", lambda r: [{**r, "member": "true"}], 422, "member", "member"),
    ("/predict", lambda r: [{k: v for k, v in r.items() if k != "plan"}], 422, "records", "plan"),
    ("/predict", lambda r: [{**r, "colour": "red"}], 422, "records", "colour"),
    (
        "/predict",
        lambda r: {"columns": {**{k: [v] for k, v in r.items()}, "city": ["a", "b"]}},
        422,
        "columns",
        "city",
    ),
    (
        "/v1/models/churn:predict",
        lambda r: {"instances": [list(r.values())[:-1]]},
        422,
        "instances",
        "9 values",
    ),
    (
        "/v2/models/churn/infer",
        lambda r: {
            "inputs": [
                {**t, "datatype": "FP64"} if t["name"] == "city" else t
                for t in v2_columns([r])["inputs"]
            ]
        },
        422,
        "datatype",
        "city",
    ),
    (
        "/v2/models/churn/infer",
        lambda r: {
            "inputs": [
                {**t, "data": ["x"]} if t["name"] == "balance" else t
                for t in v2_columns([r])["inputs"]
            ]
        },
        422,
        "inputs",
        "balance",
    ),
    (
        "/v2/models/churn/infer",
        lambda r: {
            "inputs": [
                {**t, "shape": [2], "data": t["data"] * 2} if t["name"] == "plan" else t
                for t in v2_columns([r])["inputs"]
            ]
        },
        422,
        "inputs",
        "plan",
    ),
    (
        "/v2/models/churn/infer",
        lambda r: {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, 9],
                    "datatype": "FP64",
                    "data": [1] * 9,
                }
            ]
        },
        422,
        "inputs[0]",
        "one input per column",
    ),
]


@pytest.mark.parametrize("path,build,status,field,column", BAD)
def test_malformed_mixed_requests_are_4xx_naming_column_expected_and_got(
    mixed_server, mixed, path, build, status, field, column
):
    _, _, holdout = mixed
    r = _post(mixed_server, path, build(_records(holdout.head(1))[0]))
    assert r.status_code == status, r.text
    body = r.json()
    assert field in body["field"] and column in body["error"], body
    assert "expected" in body and "got" in body, body


def test_non_utf8_body_is_a_400_naming_the_position(mixed_server):
    body = b'[{"city": "\xff\xfe"}]'
    r = httpx.post(
        mixed_server.url + "/predict", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["reason"] == "invalid_json"
    assert "UTF-8" in r.json()["error"] and "char" in r.json()["error"]
