"""Adaptive batching: same results as one-by-one, bounded waiting, failure isolation."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from modeldeploy_predictor.batching import AdaptiveBatcher, BatcherStopped


class Recorder:
    def __init__(self, estimator):
        self.estimator = estimator
        self.calls: list[int] = []

    def __call__(self, x, full=True):
        self.calls.append(x.shape[0])
        if (x[:, 0] == -999).any():
            raise ValueError("poison row")
        return self.estimator.predict(x), (self.estimator.predict_proba(x) if full else None)


@pytest.mark.parametrize("in_thread", [False, True])
async def test_concurrent_results_equal_one_by_one(classifier, cancer, in_thread):
    x, _, _ = cancer
    rec = Recorder(classifier)
    batches = []
    batcher = AdaptiveBatcher(
        rec, 64, 50, in_thread=in_thread, on_batch=lambda r, n: batches.append((r, n))
    )
    await batcher.start()
    sizes = [1, 3, 1, 7, 2, 1, 1, 5] * 8
    starts = np.cumsum([0, *sizes[:-1]])
    parts = [x[s : s + n] for s, n in zip(starts, sizes, strict=True)]
    results = await asyncio.gather(*(batcher.submit(p) for p in parts))
    await batcher.stop()
    for part, (pred, proba) in zip(parts, results, strict=True):
        assert np.array_equal(pred, classifier.predict(part))
        assert np.array_equal(proba, classifier.predict_proba(part))
    assert len(rec.calls) < len(parts)  # requests were merged
    assert max(rec.calls) <= 64
    assert sum(n for _, n in batches) == sum(sizes)


async def test_lone_request_does_not_wait_for_company(classifier, cancer):
    x, _, _ = cancer
    batcher = AdaptiveBatcher(Recorder(classifier), 64, max_wait_ms=20_000)
    await batcher.start()
    started = time.perf_counter()
    await batcher.submit(x[:1])
    elapsed = time.perf_counter() - started
    await batcher.stop()
    assert elapsed < 5.0  # nowhere near the 20 s max wait: nothing else was queued


async def test_failing_request_does_not_fail_its_neighbours(classifier, cancer):
    x, _, _ = cancer
    rec = Recorder(classifier)
    batcher = AdaptiveBatcher(rec, 64, 50)
    await batcher.start()
    poison = x[:2].copy()
    poison[1, 0] = -999
    good = [x[i : i + 1] for i in range(5)]
    results = await asyncio.gather(
        *(batcher.submit(p) for p in [*good, poison]), return_exceptions=True
    )
    await batcher.stop()
    assert isinstance(results[-1], ValueError)
    for part, (pred, _) in zip(good, results[:-1], strict=True):
        assert np.array_equal(pred, classifier.predict(part))


async def test_oversized_request_goes_alone_and_stop_drains(classifier, cancer):
    x, _, _ = cancer
    rec = Recorder(classifier)
    batcher = AdaptiveBatcher(rec, 8, 50)
    await batcher.start()
    pending = [
        asyncio.ensure_future(batcher.submit(x[:20])),
        asyncio.ensure_future(batcher.submit(x[:3])),
    ]
    await asyncio.sleep(0)
    await batcher.stop()  # everything already queued is finished
    big, small = await asyncio.gather(*pending)
    assert big[0].shape == (20,) and small[0].shape == (3,)
    assert 20 in rec.calls
    with pytest.raises(BatcherStopped):
        await batcher.submit(x[:1])
