"""Drift statistics: reference bins, the Population Stability Index, a sliding window.

Drift is judged by the operator from Prometheus, so the predictor only has to
publish a number per feature that compares recent traffic with the training data.
PSI over quantile bins is the usual choice: cheap, bounded work per row, and
readable thresholds (0.1 small, 0.2 notable, 0.25+ large).

Everything here is pure NumPy except :class:`DriftWindow`, which keeps counters.
The request path only appends arrays to a pending list (O(1)); bin indices,
counters and PSI are computed when Prometheus scrapes or a timer fires, so drift
never sits on a request's critical section.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

EPSILON = 1e-4  # floor for empty bins, so log(p/q) stays finite
# Queued rows that trigger a fold between scrapes (this also bounds memory): the
# request that triggers a fold waits for it, and small folds keep that wait short
# (figures and the rejected alternatives: benchmarks/README.md, "drift fold").
FOLD_ROWS = 64


@dataclass(frozen=True)
class NumericBins:
    """Quantile bins with open-ended outer bins: (-inf, e0], (e0, e1], ..., (e_last, inf)."""

    edges: np.ndarray  # interior cut points, increasing, unique
    proportions: np.ndarray  # reference share per bin, len(edges) + 1

    def to_json(self) -> dict:
        return {"edges": self.edges.tolist(), "proportions": self.proportions.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> NumericBins:
        return cls(np.asarray(data["edges"], float), np.asarray(data["proportions"], float))


@dataclass(frozen=True)
class CategoricalBins:
    """Class proportions (the reference distribution of a classifier's predictions)."""

    categories: list
    proportions: np.ndarray

    def to_json(self) -> dict:
        return {"categories": self.categories, "proportions": self.proportions.tolist()}

    @classmethod
    def from_json(cls, data: dict) -> CategoricalBins:
        return cls(list(data["categories"]), np.asarray(data["proportions"], float))


@dataclass(frozen=True)
class CategoryShares:
    """A categorical (or boolean) feature's reference: the shares of its most frequent
    categories plus a last "other" bucket for the rarer ones and, at serving time,
    for categories the reference never had."""

    categories: list
    proportions: np.ndarray  # len(categories) + 1, the last is "other"

    def to_json(self) -> dict:
        return {
            "categories": self.categories,
            "proportions": self.proportions.tolist(),
            "other": True,
        }

    @classmethod
    def from_json(cls, data: dict) -> CategoryShares:
        return cls(list(data["categories"]), np.asarray(data["proportions"], float))


FeatureBins = NumericBins | CategoryShares


def feature_bins_from_json(data: dict) -> FeatureBins:
    if "categories" in data:
        return CategoryShares.from_json(data)
    return NumericBins.from_json(data)


def category_shares(values: list, top: int) -> CategoryShares:
    """The ``top`` most frequent categories (ties by value order) and an "other" bucket."""
    counts: dict = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], type(kv[0]).__name__, kv[0]))
    kept = ranked[:top]
    other = sum(c for _, c in ranked[top:])
    shares = _shares(np.asarray([c for _, c in kept] + [other], dtype=float))
    return CategoryShares([k for k, _ in kept], shares)


def quantile_bins(values: np.ndarray, n_bins: int = 10) -> NumericBins:
    """Cut points at the reference quantiles; repeated values (discrete features) merge bins."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        edges = np.empty(0)
    else:
        qs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
        edges = np.unique(np.quantile(finite, qs))
    counts = np.bincount(bin_index(edges, finite), minlength=edges.size + 1)
    return NumericBins(edges, _shares(counts))


def categorical_bins(values: np.ndarray, categories: list) -> CategoricalBins:
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories))
    for value, count in zip(*np.unique(values, return_counts=True), strict=True):
        counts[index[_plain(value)]] += count
    return CategoricalBins(list(categories), _shares(counts))


def bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin of each value: bins are closed on the right, outer bins open-ended."""
    return np.searchsorted(edges, values, side="left")


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population Stability Index: sum((a - e) * ln(a / e)) over bins.

    Both inputs are proportions (or counts, normalised here). Bins empty on
    either side are floored at ``epsilon`` so one empty bin gives a large but
    finite value instead of infinity.
    """
    e = np.maximum(_shares(np.asarray(expected, float)), epsilon)
    a = np.maximum(_shares(np.asarray(actual, float)), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=float)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


class DriftWindow:
    """Per-bin counters over the most recent ``size`` rows, updated incrementally.

    ``add`` is called from the request path and only queues references to the
    arrays. ``fold`` (scrape / timer) turns queued rows into bin indices, adds
    them to the counters and subtracts the rows that fell out of the window.
    Rows come as a float matrix (all-numeric models: one vectorised pass) or as
    :class:`columns.Columns` (mixed types: binned column by column; categorical
    values outside a feature's top categories go to its "other" bucket, and
    values the reference never had are also counted as unseen).
    """

    def __init__(
        self,
        features: list[FeatureBins],
        predictions: NumericBins | CategoricalBins | None,
        size: int = 5000,
        seen: list[list | None] | None = None,
    ) -> None:
        self.features = features
        self.predictions = predictions
        self.size = size
        n_feat = len(features)
        width = max((_n_bins(b) - 1 for b in features), default=0)
        # Edges padded with +inf so one broadcast comparison bins every feature at once.
        self._edges = np.full((n_feat, width), np.inf)
        for j, bins in enumerate(features):
            if isinstance(bins, NumericBins):
                self._edges[j, : bins.edges.size] = bins.edges
        self._lookups = [
            _lookup(b.categories) if isinstance(b, CategoryShares) else None for b in features
        ]
        self._seen = [_lookup(s) if s is not None else None for s in (seen or [None] * n_feat)]
        self._counts = np.zeros((n_feat, width + 1), dtype=np.int64)
        self._rows = np.zeros((size, n_feat), dtype=np.int16)  # ring of bin indices
        self._valid = np.zeros((size, n_feat), dtype=bool)  # missing values are not counted
        self._unseen = np.zeros((size, n_feat), dtype=bool)
        self._unseen_counts = np.zeros(n_feat, dtype=np.int64)
        self.unseen_total = np.zeros(n_feat, dtype=np.int64)  # every row folded, for a counter
        n_pred = self._prediction_bins()
        self._pred_counts = np.zeros(n_pred, dtype=np.int64)
        self._pred_ring = np.full(size, -1, dtype=np.int32)
        self._head = 0
        self._filled = 0
        self._pending: deque[tuple[Any, np.ndarray]] = deque()
        self._pending_rows = 0
        self._lock = threading.Lock()

    def _prediction_bins(self) -> int:
        if isinstance(self.predictions, NumericBins):
            return self.predictions.edges.size + 1
        if isinstance(self.predictions, CategoricalBins):
            self._category_index = {c: i for i, c in enumerate(self.predictions.categories)}
            return len(self.predictions.categories)
        return 0

    @property
    def rows(self) -> int:
        return self._filled

    def add(self, x: Any, predictions: np.ndarray) -> None:
        """Queue a batch (O(1)); once FOLD_ROWS rows are queued, fold them."""
        self._pending.append((x, predictions))
        self._pending_rows += x.shape[0]
        if self._pending_rows >= FOLD_ROWS:
            self.fold()

    def fold(self) -> None:
        """Move queued rows into the counters (one vectorised pass for all queued batches)."""
        with self._lock:
            if not self._pending:
                return
            batches = list(self._pending)
            self._pending.clear()
            self._pending_rows = 0
            pred = np.concatenate([b[1] for b in batches])[-self.size :]
            if isinstance(batches[0][0], np.ndarray):
                x = np.concatenate([b[0] for b in batches])[-self.size :]
                with np.errstate(invalid="ignore"):
                    idx = (x[:, :, None] > self._edges[None, :, :]).sum(axis=2)
                self._fold_rows(idx, ~np.isnan(x), None, pred)
            else:
                from .columns import concat

                idx, valid, unseen = self._bin_columns(concat([b[0] for b in batches]).arrays)
                self.unseen_total += unseen.sum(axis=0)
                keep = slice(-self.size, None)
                self._fold_rows(idx[keep], valid[keep], unseen[keep], pred)

    def _bin_columns(self, arrays: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = arrays[0].shape[0]
        shape = (n, len(arrays))
        idx, valid, unseen = np.zeros(shape, np.int16), np.zeros(shape, bool), np.zeros(shape, bool)
        for j, (bins, arr) in enumerate(zip(self.features, arrays, strict=True)):
            if isinstance(bins, NumericBins):
                col = arr.astype(float)
                idx[:, j] = bin_index(bins.edges, col)
                valid[:, j] = ~np.isnan(col)
                continue
            missing = _missing(arr)
            codes = _codes(self._lookups[j], arr)
            idx[:, j] = np.where(codes < 0, len(bins.categories), codes)
            valid[:, j] = ~missing
            seen = self._seen[j]
            if seen is not None:
                unseen[:, j] = ~missing & (_codes(seen, arr) < 0)
        return idx, valid, unseen

    def _bincount(self, idx: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Per-feature bin counts of a block of rows, as one flat bincount."""
        n_feat, n_bins = self._counts.shape
        flat = (idx + np.arange(n_feat) * n_bins)[valid]
        return np.bincount(flat, minlength=n_feat * n_bins).reshape(n_feat, n_bins)

    def _fold_rows(
        self, idx: np.ndarray, valid: np.ndarray, unseen: np.ndarray | None, pred: np.ndarray
    ) -> None:
        n = idx.shape[0]
        pidx = self._prediction_index(pred)
        positions = (self._head + np.arange(n)) % self.size
        # Subtract the rows being overwritten, then add the new ones.
        old = positions[positions < self._filled] if self._filled < self.size else positions
        n_pred = self._pred_counts.size
        if old.size:
            self._counts -= self._bincount(self._rows[old], self._valid[old])
            self._unseen_counts -= self._unseen[old].sum(axis=0)
            old_p = self._pred_ring[old]
            self._pred_counts -= np.bincount(old_p[old_p >= 0], minlength=n_pred)[:n_pred]
        self._rows[positions] = idx
        self._valid[positions] = valid
        self._counts += self._bincount(idx, valid)
        if unseen is not None:
            self._unseen[positions] = unseen
            self._unseen_counts += unseen.sum(axis=0)
        else:
            self._unseen[positions] = False
        self._pred_ring[positions] = pidx
        self._pred_counts += np.bincount(pidx[pidx >= 0], minlength=n_pred)[:n_pred]
        self._head = (self._head + n) % self.size
        self._filled = min(self.size, self._filled + n)

    def _prediction_index(self, pred: np.ndarray) -> np.ndarray:
        if isinstance(self.predictions, NumericBins):
            return bin_index(self.predictions.edges, pred.astype(float)).astype(np.int32)
        if isinstance(self.predictions, CategoricalBins):
            lookup = self._category_index
            return np.fromiter(
                (lookup.get(_plain(p), -1) for p in pred), dtype=np.int32, count=pred.size
            )
        return np.full(pred.shape[0], -1, dtype=np.int32)

    def feature_psi(self) -> list[float]:
        """PSI per feature over the window (NaN when the window is empty)."""
        self.fold()
        out = []
        for j, bins in enumerate(self.features):
            counts = self._counts[j, : _n_bins(bins)]
            out.append(psi(bins.proportions, counts) if counts.sum() else float("nan"))
        return out

    def missing_shares(self) -> list[float]:
        """Share of missing values per feature over the window (NaN when empty)."""
        self.fold()
        if not self._filled:
            return [float("nan")] * len(self.features)
        return (1.0 - self._counts.sum(axis=1) / self._filled).tolist()

    def unseen_shares(self) -> list[float]:
        """Share of rows with a category the reference never had, per feature."""
        self.fold()
        if not self._filled:
            return [float("nan")] * len(self.features)
        return (self._unseen_counts / self._filled).tolist()

    def prediction_psi(self) -> float:
        self.fold()
        if self.predictions is None or not self._pred_counts.sum():
            return float("nan")
        return psi(self.predictions.proportions, self._pred_counts)


def _n_bins(bins: FeatureBins) -> int:
    if isinstance(bins, NumericBins):
        return bins.edges.size + 1
    return len(bins.categories) + 1


def _lookup(categories: list) -> Any:
    """A hash index of categories: positions of many values in one vectorised call."""
    import pandas as pd

    return pd.Index(list(categories), dtype=object)


def _codes(index: Any, arr: np.ndarray) -> np.ndarray:
    """Position of each value in ``index``; -1 for values not in it and for missing ones."""
    values = arr if arr.dtype == object else arr.astype(object)
    return index.get_indexer(values)


def _missing(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        return np.isnan(arr)
    if arr.dtype.kind == "b":
        return np.zeros(arr.shape, bool)
    import pandas as pd

    return pd.isna(arr)
