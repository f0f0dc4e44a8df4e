"""Adaptive micro-batching: a wrapper around a ``predict(X) -> tuple of arrays`` function.

Scikit-learn estimators pay a fixed cost per call (input validation, tree
traversal setup) that dwarfs the per-row cost, so serving N concurrent
requests with one call on N rows is much cheaper than N calls. The batcher is
adaptive: it never waits for company when none is coming. It takes whatever is
already queued, gives the event loop one turn so requests that are already
parsed can join, and keeps collecting only while new requests keep arriving,
never past ``max_wait_ms`` after the oldest one arrived and never beyond
``max_batch_size`` rows. At concurrency 1 that adds no waiting; under load the
batches fill up while the previous ``predict`` runs.

Results are split back by row offsets, so each caller gets exactly what a call
on its own rows would return. When a merged call raises, each request is
retried alone so that one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from modeldeploy_predictor import limits

PredictFn = Callable[[np.ndarray, bool], Sequence[Any]]  # (X, full) -> outputs
BatchObserver = Callable[[int, int], None]  # (requests, rows) per predict call


class BatcherStopped(RuntimeError):
    """Submitted after :meth:`AdaptiveBatcher.stop` (the server is shutting down)."""


class AdaptiveBatcher:
    def __init__(
        self,
        predict: PredictFn,
        max_batch_size: int = limits.MAX_BATCH_SIZE,
        max_wait_ms: float = limits.MAX_WAIT_MS,
        *,
        in_thread: bool = False,
        on_batch: BatchObserver | None = None,
        concat: Callable[[list[Any]], Any] = np.concatenate,
    ) -> None:
        self._predict = predict
        self.max_batch_size = max(1, max_batch_size)
        self.max_wait = max_wait_ms / 1000.0
        self._queue: deque[tuple[np.ndarray, asyncio.Future, float, bool]] = deque()
        self._wake = asyncio.Event()  # made again in start(), on the serving loop
        self._worker: asyncio.Task | None = None
        self._stopping = False
        self._on_batch = on_batch
        self._concat = concat  # float matrices, or per-column for mixed-type rows
        # One thread keeps predict calls serial (sklearn parallelises inside if asked).
        self._executor = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="predict")
            if in_thread
            else None
        )

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Finish everything queued, then stop."""
        self._stopping = True
        self._wake.set()
        if self._worker is not None:
            await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, x: Any, full: bool = True) -> Sequence[Any]:
        """Predict ``x`` with others; ``full=False`` means optional outputs are not needed."""
        if self._worker is None or self._stopping:
            raise BatcherStopped("batcher is not running")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((x, future, loop.time(), full))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            if not queue:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [queue.popleft()]
            rows = batch[0][0].shape[0]
            deadline = batch[0][2] + self.max_wait
            while rows < self.max_batch_size:
                if queue:
                    if rows + queue[0][0].shape[0] > self.max_batch_size:
                        break
                    item = queue.popleft()
                    batch.append(item)
                    rows += item[0].shape[0]
                    continue
                if self._stopping or loop.time() >= deadline:
                    break
                await asyncio.sleep(0)  # let already-readable requests enqueue
                if not queue:
                    break
            batch = [item for item in batch if not item[1].done()]  # callers that gave up
            if batch:
                await self._dispatch(batch, rows)

    async def _dispatch(self, batch: list, rows: int) -> None:
        x = batch[0][0] if len(batch) == 1 else self._concat([item[0] for item in batch])
        full = any(item[3] for item in batch)
        try:
            outputs = await self._call(x, full)
        except Exception as exc:
            if len(batch) == 1:
                _resolve(batch[0][1], exception=exc)
                return
            for item in batch:  # isolate the failing request(s)
                await self._dispatch([item], item[0].shape[0])
            return
        if self._on_batch is not None:
            self._on_batch(len(batch), x.shape[0])
        start = 0
        for item, future, _, _ in batch:
            stop = start + item.shape[0]
            _resolve(
                future, result=tuple(o[start:stop] if o is not None else None for o in outputs)
            )
            start = stop

    async def _call(self, x: Any, full: bool) -> Sequence[Any]:
        if self._executor is None:
            return self._predict(x, full)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._predict, x, full)


def _resolve(
    future: asyncio.Future, result: Any = None, exception: Exception | None = None
) -> None:
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
