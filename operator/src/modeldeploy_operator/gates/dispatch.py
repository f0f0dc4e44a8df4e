"""Fire-and-forget deliveries (event and post-rollout hooks, notifications).

A bounded queue and a few worker tasks: `submit` never waits, so a slow or
dead receiver cannot hold a reconcile (and so a rollout) back. A full queue
drops the new delivery and counts it; a failed one is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from modeldeploy_operator import metrics as opmetrics
from modeldeploy_operator.gates.client import HookClient, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    kind: str  # the `type` label: event, post-rollout, notify-slack, notify-webhook
    target: str  # hook or notification name, for logs
    url: str
    body: dict[str, Any]
    timeout: float


def retryable(outcome: Outcome) -> bool:
    """No answer, 429 or 5xx may pass on a later try; any other 4xx will not."""
    return outcome.status is None or outcome.status == 429 or outcome.status >= 500


class Dispatcher:
    def __init__(
        self,
        client: HookClient,
        *,
        maxsize: int = 1000,
        workers: int = 4,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.client = client
        self.maxsize = maxsize
        self.workers = workers
        self.attempts = attempts
        self.backoff = backoff
        self._queue: asyncio.Queue[Delivery] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def submit(self, delivery: Delivery) -> bool:
        """Queue one delivery; False (and counted as dropped) when the queue is full."""
        if self._queue is None:  # made on first use, inside the running loop
            self._queue = asyncio.Queue(self.maxsize)
            self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            opmetrics.WEBHOOK_CALLS.labels(type=delivery.kind, result="dropped").inc()
            log.warning("%s %s dropped: queue full", delivery.kind, delivery.target)
            return False
        return True

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            delivery = await self._queue.get()
            try:
                await self._deliver(delivery)
            except Exception:  # a bug in one delivery must not stop the worker
                log.exception("%s %s failed", delivery.kind, delivery.target)
            finally:
                self._queue.task_done()

    async def _deliver(self, d: Delivery) -> None:
        for attempt in range(self.attempts):
            outcome = await self.client.post(d.url, d.body, d.timeout)
            if outcome.ok:
                opmetrics.WEBHOOK_CALLS.labels(type=d.kind, result="ok").inc()
                return
            if not retryable(outcome) or attempt + 1 == self.attempts:
                break
            await asyncio.sleep(self.backoff * 2**attempt)
        opmetrics.WEBHOOK_CALLS.labels(type=d.kind, result="failed").inc()
        log.warning("%s %s to %s failed: %s", d.kind, d.target, d.url, outcome.message)

    async def drain(self) -> None:
        """Wait until every queued delivery was tried (tests, shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks, self._queue = [], None
