"""Ground-truth feedback: remember what this pod predicted, judge outcomes later.

The pod that answered a request is the one that knows its prediction, so it
keeps ``request id -> predictions`` here (bounded count, TTL) and judges an
outcome when the router forwards it (docs/router.md, Feedback). Remembering is
O(1) on the request path: the prediction array is kept as is and only turned
into Python values when an outcome arrives.

Pure logic, no I/O: the HTTP handler (server/endpoints.py) parses bodies with
``parse_outcomes`` and counts the verdicts in metrics.py.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_OUTCOMES = 1000  # per feedback request
MAX_ID_LENGTH = 256  # longer request ids are not kept (memory is bounded by id count)

RECORDED = "recorded"
UNKNOWN = "unknown"
INVALID = "invalid"


class FeedbackError(ValueError):
    """A malformed feedback body (the client's 400)."""


@dataclass(frozen=True)
class Outcome:
    request_id: str
    labels: list[Any]  # one per predicted row


@dataclass(frozen=True)
class Judged:
    """The verdict on one outcome; `rows`/`correct`/`abs_error` are what it adds."""

    request_id: str
    result: str  # RECORDED | UNKNOWN | INVALID
    rows: int = 0
    correct: int = 0
    abs_error: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"request_id": self.request_id, "result": self.result}
        if self.error is not None:
            out["error"] = self.error
        return out


def _one(doc: Any, where: str, header_id: str | None) -> Outcome:
    if not isinstance(doc, Mapping):
        raise FeedbackError(f"{where}: expected an object with request_id and label")
    rid = doc.get("request_id", header_id)
    if not isinstance(rid, str) or not rid:
        raise FeedbackError(f"{where}.request_id: expected a non-empty string, got {rid!r:.60}")
    if "label" not in doc:
        raise FeedbackError(f"{where}.label: missing (the true label or value)")
    label = doc["label"]
    labels = label if isinstance(label, list) else [label]
    if not labels:
        raise FeedbackError(f"{where}.label: an empty list")
    return Outcome(rid, labels)


def parse_outcomes(doc: Any, header_id: str | None = None) -> list[Outcome]:
    """`{"request_id", "label"}` (the id may come from the x-request-id header
    instead) or `{"outcomes": [{"request_id", "label"}, ...]}`. A label is one
    value, or a list with one value per row of a batch prediction."""
    if isinstance(doc, Mapping) and "outcomes" in doc:
        items = doc["outcomes"]
        if not isinstance(items, list) or not items:
            raise FeedbackError("outcomes: expected a non-empty list")
        if len(items) > MAX_OUTCOMES:
            raise FeedbackError(f"outcomes: at most {MAX_OUTCOMES} per request, got {len(items)}")
        return [_one(item, f"outcomes[{i}]", None) for i, item in enumerate(items)]
    return [_one(doc, "body", header_id)]


class PredictionMemory:
    """Request id -> predicted rows, oldest first; bounded by ids, rows and age.

    An id is forgotten once judged, so a repeated outcome is not counted twice.
    `on_evict(reason, n)` counts what was dropped unjudged ("expired", "full").
    """

    def __init__(
        self,
        max_ids: int,
        ttl: float,
        max_rows: int,
        max_total_rows: int = 1_000_000,
        on_evict: Callable[[str, int], None] = lambda reason, n: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_ids = max_ids
        self.ttl = ttl
        self.max_rows = max_rows
        self.max_total_rows = max_total_rows
        self._on_evict = on_evict
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, np.ndarray]] = OrderedDict()
        self.rows = 0  # predicted rows kept, all ids together

    def __len__(self) -> int:
        return len(self._items)

    def remember(self, request_id: str, pred: np.ndarray) -> str | None:
        """Keep one prediction; else the reason it is not kept."""
        if self.max_ids <= 0:
            return "off"
        if len(pred) > self.max_rows:
            return "too_many_rows"
        if len(request_id) > MAX_ID_LENGTH:
            return "id_too_long"
        now = self._clock()
        self._expire(now)
        items = self._items
        old = items.pop(request_id, None)  # a reused id: the latest prediction counts
        if old is not None:
            self.rows -= len(old[1])
        items[request_id] = (now + self.ttl, pred)
        self.rows += len(pred)
        full = 0
        while len(items) > self.max_ids or self.rows > self.max_total_rows:
            self.rows -= len(items.popitem(last=False)[1][1])
            full += 1
        if full:
            self._on_evict("full", full)
        return None

    def _expire(self, now: float) -> None:
        items = self._items
        expired = 0
        while items:
            deadline, pred = next(iter(items.values()))
            if deadline > now:
                break
            items.popitem(last=False)
            self.rows -= len(pred)
            expired += 1
        if expired:
            self._on_evict("expired", expired)

    def take(self, request_id: str) -> np.ndarray | None:
        self._expire(self._clock())
        item = self._items.pop(request_id, None)
        if item is None:
            return None
        self.rows -= len(item[1])
        return item[1]

    def judge(self, outcome: Outcome, classifier: bool) -> Judged:
        """Compare an outcome with the remembered prediction (then forget it).

        An invalid outcome (wrong row count, a non-number for a regressor)
        keeps the prediction, so a corrected outcome can still be sent."""
        pred = self.take(outcome.request_id)
        if pred is None:
            return Judged(outcome.request_id, UNKNOWN)
        judged = judge(outcome, pred.tolist(), classifier)
        if judged.result == INVALID:
            self._items[outcome.request_id] = (self._clock() + self.ttl, pred)
            self.rows += len(pred)
        return judged


def _same(predicted: Any, label: Any) -> bool:
    # JSON labels are str/int/float/bool; classes come back as their NumPy twins
    return bool(predicted == label) or str(predicted) == str(label)


def judge(outcome: Outcome, predicted: list[Any], classifier: bool) -> Judged:
    rid, labels = outcome.request_id, outcome.labels
    if len(labels) != len(predicted):
        return Judged(
            rid,
            INVALID,
            error=f"{len(labels)} label(s) for a prediction of {len(predicted)} row(s)",
        )
    if classifier:
        correct = sum(_same(p, y) for p, y in zip(predicted, labels, strict=True))
        return Judged(rid, RECORDED, rows=len(labels), correct=correct)
    total = 0.0
    for i, (p, y) in enumerate(zip(predicted, labels, strict=True)):
        if isinstance(y, bool) or not isinstance(y, int | float) or not math.isfinite(y):
            return Judged(
                rid, INVALID, error=f"label[{i}]: expected a finite number, got {y!r:.40}"
            )
        total += abs(float(p) - float(y))
    return Judged(rid, RECORDED, rows=len(labels), abs_error=total)
