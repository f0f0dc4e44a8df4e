"""Compare a shadow's predictions with the primary's for the same request.

This is the differential test of a new model on live traffic. The predictor
answers in three shapes (Open Inference Protocol v2 `outputs[0].data`, KServe
v1 `predictions`, plain `/predict` `predictions`); all reduce to one list of
per-row predictions. Rows are compared one by one:

* labels (strings, integers, booleans: classifiers) agree when equal;
* floats (regressors) are compared by absolute and relative difference and
  agree when the relative difference is within a tolerance.

JSON keeps the distinction: the predictor writes classifier labels as the
classes themselves and regression outputs as floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import orjson

LABELS = "labels"
NUMBERS = "numbers"


class UnreadablePrediction(ValueError):
    """The body is not one of the predictor's response shapes."""


def extract_predictions(body: bytes) -> list[object]:
    """Per-row predictions from a predictor response body."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnreadablePrediction(f"response is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UnreadablePrediction("response is not a JSON object")
    if "outputs" in doc:
        outputs = doc["outputs"]
        if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], dict):
            raise UnreadablePrediction("'outputs' is not a non-empty list of tensors")
        data = outputs[0].get("data")
    elif "predictions" in doc:
        data = doc["predictions"]
    else:
        raise UnreadablePrediction("response has neither 'outputs' nor 'predictions'")
    if not isinstance(data, list):
        raise UnreadablePrediction("predictions are not a list")
    return data


def _is_number(value: object) -> bool:
    return isinstance(value, float)


@dataclass
class Comparison:
    """Row-level result of one primary/shadow pair."""

    kind: str
    rows: int = 0
    agreements: int = 0
    abs_diffs: list[float] = field(default_factory=list)
    rel_diffs: list[float] = field(default_factory=list)


def compare(primary: list[object], shadow: list[object], rel_tolerance: float) -> Comparison:
    """Compare row by row; a row-count mismatch is an error, not a disagreement,
    because it means the shadow misread the request."""
    if len(primary) != len(shadow):
        raise UnreadablePrediction(
            f"shadow returned {len(shadow)} rows for a request the primary answered "
            f"with {len(primary)}"
        )
    numeric = bool(primary) and all(_is_number(p) for p in primary)
    numeric = numeric and all(isinstance(s, (int, float)) for s in shadow)
    if not numeric:
        agreements = sum(1 for p, s in zip(primary, shadow, strict=True) if p == s)
        return Comparison(LABELS, rows=len(primary), agreements=agreements)
    result = Comparison(NUMBERS, rows=len(primary))
    for p, s in zip(primary, shadow, strict=True):
        diff = abs(float(s) - float(p))  # type: ignore[arg-type]
        scale = abs(float(p))  # type: ignore[arg-type]
        rel = diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)
        result.abs_diffs.append(diff)
        result.rel_diffs.append(rel)
        if rel <= rel_tolerance:
            result.agreements += 1
    return result
