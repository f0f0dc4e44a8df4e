"""Pure pieces of the mixed-type path: column conversion, shape limits, strict booleans,
categorical drift over a window of Columns."""

from __future__ import annotations

import numpy as np
import pytest
from modeldeploy_predictor import columns, drift, mixed, parsing
from modeldeploy_predictor.parsing import InputError
from modeldeploy_predictor.schema import Feature, Schema

SCHEMA = Schema(
    (
        Feature("n", "numeric", "float64", missing=True, nullable=True),
        Feature("c", "categorical", "object", categories=("a", "b"), nullable=False),
        Feature("k", "categorical", "int64", categories=(1, 2, 3)),
        Feature("f", "boolean", "bool"),
    )
)


def test_every_protocol_gives_the_same_columns():
    recs = [{"n": 1.5, "c": "a", "k": 2, "f": True}, {"n": None, "c": "z", "k": 3, "f": False}]
    v2 = {
        "inputs": [
            {"name": "n", "shape": [2], "datatype": "FP64", "data": [1.5, None]},
            {"name": "c", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["z"]]},
            {"name": "k", "shape": [2], "datatype": "INT64", "data": [2, 3]},
            {"name": "f", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        ]
    }
    forms = [
        mixed.v2_request(v2, SCHEMA)[0],
        mixed.v1_request({"instances": recs}, SCHEMA),
        mixed.v1_request({"instances": [list(r.values()) for r in recs]}, SCHEMA),
        mixed.predict_request(recs, SCHEMA),
        mixed.predict_request({"columns": {k: [r[k] for r in recs] for k in "nckf"}}, SCHEMA),
    ]
    for x in forms:
        n, c, k, f = x.arrays
        assert np.array_equal(n, [1.5, np.nan], equal_nan=True)
        assert c.tolist() == ["a", "z"] and k.tolist() == [2.0, 3.0]
        assert f.dtype == bool and f.tolist() == [True, False]
    assert columns.first_unseen(SCHEMA, forms[0]) == ("c", "z")
    frame = columns.to_frame(SCHEMA, columns.concat(forms[:2]))
    assert frame.shape == (4, 4) and str(frame["k"].dtype) == "int64"


@pytest.mark.parametrize(
    "column,value,reason,expected",
    [
        ("n", "1.5", "dtype", "number or null"),
        ("n", True, "dtype", "number or null"),
        ("n", [1.0], "dtype", "number or null"),
        ("c", None, "missing_value", "string"),
        ("c", 1, "dtype", "string"),
        ("c", {"a": 1}, "dtype", "string"),
        ("k", "1", "dtype", "number"),
        ("f", 1, "dtype", "boolean"),
        ("f", None, "missing_value", "boolean"),
    ],
)
def test_wrong_values_name_column_element_expected_and_got(column, value, reason, expected):
    rec = {"n": 1.0, "c": "a", "k": 1, "f": True}
    with pytest.raises(InputError) as err:
        mixed.predict_request([rec, {**rec, column: value}], SCHEMA)
    e = err.value
    assert e.reason == reason and e.field == f"records[*].{column}[1]"
    assert e.expected == expected and f"column {column!r}" in e.message


def test_shape_checks_come_before_any_allocation():
    huge = {
        "inputs": [{"name": "x", "shape": [4611686018427387904, 0], "datatype": "FP64", "data": []}]
    }
    with pytest.raises(InputError) as err:
        parsing.v2_request(huge, ["a", "b"])
    assert err.value.field == "inputs[0].shape[0]" and err.value.status == 422
    deep = {"inputs": [{"name": "x", "shape": [1] * 65, "datatype": "FP64", "data": [1.0]}]}
    for parse in (lambda d: parsing.v2_request(d, ["a"]), lambda d: mixed.v2_request(d, SCHEMA)):
        with pytest.raises(InputError) as err:
            parse({"inputs": [{**deep["inputs"][0], "name": "n"}]})
        assert err.value.field == "inputs[0].shape" and "65 dimensions" in err.value.message


@pytest.mark.parametrize(
    "data", [[1, True, 3, 4], [1.5, False], [[1, 2], [True, 4]]], ids=["int", "float", "nested"]
)
def test_booleans_among_numbers_are_refused(data):
    shape = [2, 2] if isinstance(data[0], list) else [len(data)]
    doc = {"inputs": [{"name": "a", "shape": shape, "datatype": "FP64", "data": data}]}
    features = ["a", "b"] if shape == [2, 2] else ["a"]
    with pytest.raises(InputError) as err:
        parsing.v2_request(doc, features)
    assert err.value.got == "boolean" and err.value.reason == "dtype"
    # without a boolean in the body (the endpoints' byte check) the fast path is taken
    clean = [[1, 2], [3, 4]] if shape == [2, 2] else [1, 2, 3, 4][: len(data)]
    doc["inputs"][0]["data"] = clean
    x, _, _ = parsing.v2_request(doc, features, bools=False)
    assert x.dtype == np.float64


def test_category_shares_keep_the_top_and_an_other_bucket():
    bins = drift.category_shares(["a"] * 5 + ["b"] * 3 + ["c", "d"], top=2)
    assert bins.categories == ["a", "b"]
    assert bins.proportions.tolist() == pytest.approx([0.5, 0.3, 0.2])
    again = drift.feature_bins_from_json(bins.to_json())
    assert again.categories == bins.categories


def test_window_of_columns_counts_psi_missing_and_unseen():
    ref = drift.category_shares(["a", "a", "b", "b"], top=5)
    num = drift.quantile_bins(np.arange(100.0), 4)
    window = drift.DriftWindow([num, ref], None, size=8, seen=[None, ["a", "b"]])

    def batch(nums, cats):
        cat = np.empty(len(cats), dtype=object)
        cat[:] = cats
        return columns.Columns((np.asarray(nums, float), cat))

    window.add(batch([1, 60, np.nan, 99], ["a", "b", None, "zz"]), np.zeros(4))
    window.fold()
    assert window.missing_shares() == [0.25, 0.25]
    assert window.unseen_shares() == [0.0, 0.25]
    assert window.unseen_total.tolist() == [0, 1]
    # 10 more rows: the first 6 leave the window of 8, counters follow exactly
    window.add(batch([5] * 10, ["a"] * 10), np.zeros(10))
    window.fold()
    assert window.rows == 8 and window.missing_shares() == [0.0, 0.0]
    assert window.unseen_shares() == [0.0, 0.0] and window.unseen_total.tolist() == [0, 1]
    psi_num, psi_cat = window.feature_psi()
    assert psi_cat == pytest.approx(drift.psi(ref.proportions, [8, 0, 0]))
    assert psi_num == pytest.approx(drift.psi(num.proportions, [8, 0, 0, 0]))


def test_a_feature_given_twice_or_a_ragged_column_is_named():
    col = {"name": "c", "shape": [1], "datatype": "BYTES", "data": ["a"]}
    others = [
        {"name": "n", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "k", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "f", "shape": [1], "datatype": "BOOL", "data": [True]},
    ]
    with pytest.raises(InputError) as err:
        mixed.v2_request({"inputs": [col, *others, col]}, SCHEMA)
    assert err.value.field == "inputs[4].name" and "twice" in err.value.message
    with pytest.raises(InputError) as err:
        mixed.v2_request({"inputs": [{**col, "shape": [2]}, *others]}, SCHEMA)
    assert err.value.field == "inputs[0].data" and (err.value.expected, err.value.got) == (2, 1)
