"""Unit tests of the primary/shadow prediction comparison."""

from __future__ import annotations

import math

import orjson
import pytest
from modeldeploy_router import compare


def oip(data: list) -> bytes:
    return orjson.dumps(
        {"model_name": "m", "outputs": [{"name": "p", "shape": [len(data)], "data": data}]}
    )


def test_extract_three_shapes() -> None:
    assert compare.extract_predictions(oip(["a", "b"])) == ["a", "b"]
    assert compare.extract_predictions(b'{"predictions": [1.5, 2.0]}') == [1.5, 2.0]
    assert compare.extract_predictions(b'{"predictions": [0, 1], "model_version": "1"}') == [0, 1]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"error": "x"}', "neither"),
        (b'{"outputs": []}', "non-empty list"),
        (b'{"predictions": 3}', "not a list"),
    ],
)
def test_extract_rejects(body: bytes, message: str) -> None:
    with pytest.raises(compare.UnreadablePrediction, match=message):
        compare.extract_predictions(body)


def test_labels_agree_per_row() -> None:
    result = compare.compare(["a", "b", "c", "a"], ["a", "c", "c", "b"], 0.01)
    assert (result.kind, result.rows, result.agreements) == (compare.LABELS, 4, 2)
    # integer class labels are labels, not numbers
    result = compare.compare([0, 1, 1], [0, 1, 0], 0.01)
    assert (result.kind, result.agreements) == (compare.LABELS, 2)


def test_numbers_diffs_and_tolerance() -> None:
    result = compare.compare([10.0, 2.0, 0.0, -4.0], [10.05, 3.0, 0.0, -4.0], 0.01)
    assert result.kind == compare.NUMBERS
    assert result.rows == 4
    assert result.abs_diffs == pytest.approx([0.05, 1.0, 0.0, 0.0])
    assert result.rel_diffs == pytest.approx([0.005, 0.5, 0.0, 0.0])
    assert result.agreements == 3


def test_zero_primary_with_difference_is_infinite_relative() -> None:
    result = compare.compare([0.0], [0.5], 0.01)
    assert math.isinf(result.rel_diffs[0])
    assert result.agreements == 0


def test_row_count_mismatch_is_an_error() -> None:
    with pytest.raises(compare.UnreadablePrediction, match="2 rows"):
        compare.compare(["a"], ["a", "b"], 0.01)
