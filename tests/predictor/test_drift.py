"""PSI against hand-computed values, quantile bins, and the sliding window counters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from modeldeploy_predictor import drift


def test_psi_matches_hand_computation():
    # (0.25-0.5)ln(0.25/0.5) + (0.75-0.5)ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert drift.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.2746530722, rel=1e-9)


def test_psi_identical_distributions_is_zero_and_counts_are_normalised():
    assert drift.psi([0.2, 0.3, 0.5], [2, 3, 5]) == pytest.approx(0.0, abs=1e-15)


def test_psi_empty_bin_is_floored_by_epsilon():
    # expected [1, 0] -> [1, 1e-4]; actual [0.5, 0.5]
    hand = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert drift.psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(hand, rel=1e-12)
    assert hand == pytest.approx(4.6043, abs=1e-4)


def test_quantile_bins_are_open_ended_and_proportional():
    values = np.arange(1.0, 101.0)
    bins = drift.quantile_bins(values, 10)
    assert bins.edges.size == 9
    assert bins.proportions == pytest.approx([0.1] * 10)
    idx = drift.bin_index(bins.edges, np.array([-1e9, 1.0, 50.5, 50.6, 1e9]))
    assert idx.tolist() == [0, 0, 4, 5, 9]  # 50.5 is the median edge: right-closed


def test_discrete_feature_merges_repeated_edges():
    values = np.array([0.0] * 80 + [1.0] * 20)
    bins = drift.quantile_bins(values, 10)
    # deciles 0.1-0.7 are all 0 -> one edge; 0.8 interpolates to 0.2; 0.9 is 1
    assert bins.edges.tolist() == pytest.approx([0.0, 0.2, 1.0])
    assert bins.proportions.tolist() == pytest.approx([0.8, 0.0, 0.2, 0.0])


def _window(size=4):
    feature = drift.NumericBins(np.array([0.0, 1.0]), np.array([0.25, 0.5, 0.25]))
    preds = drift.CategoricalBins(["a", "b"], np.array([0.5, 0.5]))
    return drift.DriftWindow([feature, feature], preds, size=size)


def test_window_counts_equal_recount_of_last_rows():
    rng = np.random.default_rng(0)
    window = _window(size=7)
    history, labels = [], []
    for _ in range(6):
        n = int(rng.integers(1, 5))
        x = rng.normal(0.5, 1, size=(n, 2))
        p = rng.choice(["a", "b"], size=n)
        window.add(x, p)
        history.append(x)
        labels.append(p)
    all_x = np.concatenate(history)[-7:]
    all_p = np.concatenate(labels)[-7:]
    window.fold()
    assert window.rows == 7
    for j in range(2):
        recount = np.bincount(drift.bin_index(np.array([0.0, 1.0]), all_x[:, j]), minlength=3)
        assert window._counts[j].tolist() == recount.tolist()
    assert window._pred_counts.tolist() == [(all_p == "a").sum(), (all_p == "b").sum()]


def test_window_psi_zero_for_reference_shaped_traffic_and_large_for_shifted():
    window = _window(size=100)
    x = np.array([[-1.0, -1.0], [0.5, 0.5], [0.5, 0.5], [2.0, 2.0]] * 5)
    window.add(x, np.array(["a", "b"] * 10))
    assert window.feature_psi() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert window.prediction_psi() == pytest.approx(0.0, abs=1e-12)
    window.add(np.full((100, 2), 5.0), np.array(["a"] * 100))  # everything in the last bin
    assert min(window.feature_psi()) > 1.0
    assert window.prediction_psi() > 1.0


def test_window_ignores_nan_and_empty_window_is_nan():
    window = _window()
    assert all(math.isnan(v) for v in window.feature_psi())
    window.add(np.array([[np.nan, 0.5]]), np.array(["a"]))
    window.fold()
    assert window._counts[0].sum() == 0
    assert window._counts[1].sum() == 1


def test_many_small_batches_fold_automatically_and_stay_exact():
    rng = np.random.default_rng(1)
    window = _window(size=100)  # fewer rows than are added: old rows leave too
    xs = rng.normal(0.5, 1, size=(drift.FOLD_ROWS * 2 + 7, 2))
    preds = rng.choice(["a", "b"], size=xs.shape[0])
    for i in range(xs.shape[0]):
        window.add(xs[i : i + 1], preds[i : i + 1])
    assert len(window._pending) == 7  # two automatic folds happened
    window.fold()
    recount = np.bincount(drift.bin_index(np.array([0.0, 1.0]), xs[-100:, 0]), minlength=3)
    assert window._counts[0].tolist() == recount.tolist() and window.rows == 100
    assert window._pred_counts.sum() == 100
