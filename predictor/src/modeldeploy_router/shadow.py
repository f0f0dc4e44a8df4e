"""Shadow mirroring: copy requests to the shadow track and compare answers.

The copy is queued after the primary response has been sent, so the shadow's
latency and failures can never reach the client. The queue is bounded in
copies and in bytes of bodies, and the workers in number: a copy over either
bound is dropped and counted, which keeps memory flat when the shadow is
slower than the live traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import NamedTuple

from modeldeploy_router import compare, routing
from modeldeploy_router.metrics import RouterMetrics
from modeldeploy_router.settings import Settings
from modeldeploy_router.upstream import Upstream, UpstreamError

log = logging.getLogger(__name__)


class Copy(NamedTuple):
    """One mirrored request plus the primary's answer to compare against (a
    NamedTuple: cheap on the primary path, benchmarks/README.md; its fields
    after `shadow` go to the shadow process as they are)."""

    model: str
    shadow: routing.Track
    primary_version: str
    method: str
    path_qs: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    primary_status: int
    primary_body: bytes


class Mirror:
    def __init__(
        self,
        upstream: Upstream,
        metrics: RouterMetrics,
        settings: Settings,
        current_shadow: Callable[[], routing.Track | None] | None = None,
    ) -> None:
        self.current_shadow = current_shadow
        self.upstream = upstream
        self.metrics = metrics
        self.timeout = settings.shadow_timeout
        self.regression_tolerance = settings.regression_tolerance
        self.concurrency = settings.mirror_concurrency
        self.max_bytes = settings.mirror_queue_bytes
        self.queue: asyncio.Queue[Copy] = asyncio.Queue(maxsize=settings.mirror_queue)
        self.queued_bytes = 0  # bodies of the copies queued or in flight
        self._workers: list[asyncio.Task] = []

    async def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"shadow-{i}") for i in range(self.concurrency)
        ]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []

    def set_table(self, table: routing.RoutingTable) -> None:
        """Nothing to do: `current_shadow` reads the router's table."""

    async def exposition(self) -> bytes:
        """Nothing to add: the metrics are in the router's registry."""
        return b""

    def dropped_too_large(self, model: str) -> None:
        """A copy the router could not keep (bodies over the queue's bytes)."""
        self.metrics.mirror_result(model, "dropped")

    def submit(self, copy: Copy) -> bool:
        """Queue a copy without waiting; False (and counted) when full."""
        size = len(copy.body) + len(copy.primary_body)
        if self.queued_bytes + size > self.max_bytes or self.queue.full():
            self.metrics.mirror_result(copy.model, "dropped")
            return False
        self.queue.put_nowait(copy)
        self.queued_bytes += size
        return True

    async def _work(self) -> None:
        while True:
            copy = await self.queue.get()
            try:
                await self.handle(copy)
            except Exception:  # a bug here must not kill the worker
                log.exception("shadow comparison failed")
            finally:  # counted until done: a copy in flight holds its bodies too
                self.queued_bytes -= len(copy.body) + len(copy.primary_body)
                self.queue.task_done()

    async def handle(self, copy: Copy) -> None:
        m = self.metrics
        errors = m.shadow_track_child(m.shadow_errors, copy.model, copy.shadow)
        # The shadow's endpoints as they are now (the copy may have waited in the queue).
        current = self.current_shadow() if self.current_shadow else None
        url = (current or copy.shadow).pool.pick()
        if url is None:
            m.mirror_result(copy.model, "dropped")
            return
        try:
            resp = await self.upstream.call(
                url,
                copy.method,
                copy.path_qs.encode("latin-1"),
                copy.headers,
                copy.body,
                self.timeout,
                self.max_bytes,
            )
        except UpstreamError as exc:
            m.mirror_result(copy.model, "error")
            errors.inc()
            log.debug("shadow %s failed: %r", url, exc)
            return
        m.mirror_result(copy.model, "sent")
        m.shadow_track_child(m.shadow_duration, copy.model, copy.shadow).observe(resp.seconds)
        if resp.status >= 400:
            errors.inc()
            return
        if copy.primary_status >= 400:
            return  # nothing to compare against
        try:
            primary = compare.extract_predictions(copy.primary_body)
        except compare.UnreadablePrediction:
            return  # not an inference answer (the primary is the reference)
        try:
            result = compare.compare(
                primary, compare.extract_predictions(resp.body), self.regression_tolerance
            )
        except compare.UnreadablePrediction as exc:
            errors.inc()
            log.debug("shadow answer unreadable: %s", exc)
            return
        labels = (copy.model, copy.primary_version, copy.shadow)
        m.shadow_child(m.comparisons, *labels).inc(result.rows)
        m.shadow_child(m.agreements, *labels).inc(result.agreements)
        if result.kind == compare.NUMBERS:
            abs_hist = m.shadow_child(m.abs_diff, *labels)
            rel_hist = m.shadow_child(m.rel_diff, *labels)
            for a, r in zip(result.abs_diffs, result.rel_diffs, strict=True):
                abs_hist.observe(a)
                rel_hist.observe(r)
