"""Request parsing: every protocol shape to the same matrix, and precise errors."""

from __future__ import annotations

import numpy as np
import pytest
from modeldeploy_predictor import parsing
from modeldeploy_predictor.parsing import InputError

FEATURES = ["a", "b", "c"]
X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def v2(data, shape=(2, 3), datatype="FP64", name="input-0"):
    return {"inputs": [{"name": name, "shape": list(shape), "datatype": datatype, "data": data}]}


@pytest.mark.parametrize(
    "doc",
    [
        v2(X.tolist()),
        v2(X.ravel().tolist()),  # flat data is allowed by the protocol
        v2(X.astype(int).tolist(), datatype="INT64"),
        v2(X.ravel().tolist(), datatype="FP32"),
        v2([str(v) for v in X.ravel()], datatype="BYTES"),
        {
            "inputs": [
                {"name": n, "shape": [2], "datatype": "FP64", "data": X[:, j].tolist()}
                for j, n in reversed(list(enumerate(FEATURES)))  # order does not matter
            ]
        },
    ],
)
def test_v2_forms_give_the_same_matrix(doc):
    x, wanted, _ = parsing.v2_request(doc, FEATURES)
    assert x.dtype == np.float64
    assert np.array_equal(x, X)
    assert wanted is None


def test_v2_single_row_vector_and_requested_outputs():
    doc = v2([1, 2, 3], shape=(3,))
    doc["outputs"] = [{"name": "predict_proba"}]
    doc["id"] = "req-1"
    x, wanted, rid = parsing.v2_request(doc, FEATURES)
    assert x.shape == (1, 3) and wanted == ["predict_proba"] and rid == "req-1"


def _error(fn, *args) -> InputError:
    with pytest.raises(InputError) as info:
        fn(*args)
    return info.value


@pytest.mark.parametrize(
    ("doc", "reason", "field"),
    [
        ({}, "schema", "inputs"),
        ({"inputs": "x"}, "schema", "inputs"),
        ({"inputs": []}, "empty", "inputs"),
        (v2(X.tolist(), shape=(3, 3)), "shape", "inputs[0].data"),
        (v2(X.tolist(), shape=(3, 2)), "shape", "inputs[0].shape"),
        (v2([[1, 2, 3], [4, 5]], shape=(2, 3)), "shape", "inputs[0].data"),
        (v2([[1, 2, "x"], [4, 5, 6]]), "dtype", "inputs[0].data[0][2]"),
        (v2([[1, 2, None], [4, 5, 6]]), "dtype", "inputs[0].data[0][2]"),
        (v2([[1.5, 2, 3], [4, 5, 6]], datatype="INT64"), "dtype", "inputs[0].data[0][0]"),
        (v2(["1", "2", "x", "4", "5", "6"], datatype="BYTES"), "dtype", "inputs[0].data[2]"),
        (v2(X.tolist(), datatype="STRING"), "dtype", "inputs[0].datatype"),
        (v2([], shape=(0, 3)), "empty", "inputs[0]"),
        (v2(X.tolist(), shape=(2, -3)), "shape", "inputs[0].shape"),
        ({"inputs": [{"name": "a", "shape": [2], "datatype": "FP64"}]}, "schema", "inputs[0].data"),
    ],
)
def test_v2_errors_name_field(doc, reason, field):
    err = _error(parsing.v2_request, doc, FEATURES)
    assert (err.reason, err.field) == (reason, field)
    assert err.status == 422
    body = err.body()
    assert body["error"] and body["reason"] == reason and body["field"] == field


def test_v2_named_tensor_errors():
    named = {
        "inputs": [
            {"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
            {"name": "zzz", "shape": [2], "datatype": "FP64", "data": [1, 2]},
        ]
    }
    err = _error(parsing.v2_request, named, FEATURES)
    assert err.reason == "unknown_feature" and err.got == "zzz" and err.expected == FEATURES
    named["inputs"][1]["name"] = "b"
    err = _error(parsing.v2_request, named, FEATURES)
    assert err.reason == "missing_feature" and "['c']" in err.message
    named["inputs"].append({"name": "c", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]})
    assert _error(parsing.v2_request, named, FEATURES).reason == "shape"


def test_v1_instances_and_records():
    assert np.array_equal(parsing.v1_request({"instances": X.tolist()}, FEATURES), X)
    recs = [dict(zip(FEATURES, row, strict=True)) for row in X.tolist()]
    assert np.array_equal(parsing.v1_request({"instances": recs}, FEATURES), X)
    assert _error(parsing.v1_request, {"instances": [[1, 2]]}, FEATURES).reason == "shape"
    assert _error(parsing.v1_request, {"instances": []}, FEATURES).reason == "empty"
    assert _error(parsing.v1_request, {"rows": []}, FEATURES).field == "instances"


def test_predict_records_and_columns():
    recs = [dict(zip(FEATURES, row, strict=True)) for row in X.tolist()]
    assert np.array_equal(parsing.predict_request(recs, FEATURES), X)
    assert np.array_equal(parsing.predict_request({"records": recs}, FEATURES), X)
    cols = {n: X[:, j].tolist() for j, n in enumerate(FEATURES)}
    assert np.array_equal(parsing.predict_request({"columns": cols}, FEATURES), X)


def test_predict_errors():
    err = _error(parsing.predict_request, [{"a": 1, "b": 2}], FEATURES)
    assert err.reason == "missing_feature" and err.field == "records[0]" and "['c']" in err.message
    err = _error(parsing.predict_request, [{"a": 1, "b": 2, "c": 3, "d": 4}], FEATURES)
    assert err.reason == "unknown_feature" and "['d']" in err.message
    err = _error(parsing.predict_request, [{"a": 1, "b": 2, "c": "x"}], FEATURES)
    assert err.reason == "dtype" and err.field == "records[0][2]" and err.got == "string"
    assert _error(parsing.predict_request, [], FEATURES).reason == "empty"
    assert _error(parsing.predict_request, [1, 2], FEATURES).reason == "schema"
    assert _error(parsing.predict_request, "x", FEATURES).reason == "schema"
    err = _error(parsing.predict_request, {"columns": {"a": [1], "b": [1], "c": [1, 2]}}, FEATURES)
    assert err.reason == "shape"
    err = _error(parsing.predict_request, {"columns": {"a": [1], "q": [1]}}, FEATURES)
    assert err.reason == "unknown_feature"


def test_invalid_json_is_400():
    for body in (b"", b"{", b"NaN", b"[1, 2"):
        err = _error(parsing.loads, body)
        assert err.status == 400 and err.reason == "invalid_json"


def test_non_finite_values():
    x = np.array([[1.0, np.nan], [np.inf, 0.0]])
    err = _error(parsing.check_finite, x, False)
    assert err.reason == "non_finite" and err.field == "row 0, column 1"
    err = _error(parsing.check_finite, x, True)  # NaN allowed, inf never
    assert err.field == "row 1, column 0"
    parsing.check_finite(np.array([[np.nan]]), True)
    fp32 = v2([[1e39, 0, 0]], shape=(1, 3), datatype="FP32")  # overflows float32
    x32, _, _ = parsing.v2_request(fp32, FEATURES)
    assert _error(parsing.check_finite, x32, False).reason == "non_finite"
