"""The built-in load generator: `POST /loadtest` on the operator's HTTP server.

Flagger users run a load tester when real traffic is too thin to judge; this
is ours, in the operator. A `pre-rollout` or `rollout` webhook pointing at it
starts (or extends) a load on the candidate revision that replays the
candidate bundle's validation set (the rows `bundle --validation` packed) at
the asked rate, straight to the candidate's Ready pods, round robin, like the
pre-traffic validation does. The call answers at once (the load runs in the
background until its duration passes), so the webhook never times out on it;
a load that cannot start (no Ready pod: 503, no validation set: 422) fails
the call, and so the hook.
The request format is in loadspec.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
from aiohttp import web

from modeldeploy_operator import manifests
from modeldeploy_operator import metrics as opmetrics
from modeldeploy_operator.gates import loadspec
from modeldeploy_operator.gates import validation as pods
from modeldeploy_operator.kube import Kube

log = logging.getLogger(__name__)
PATH = "/loadtest"
REFRESH_PODS = 10.0  # seconds between pod listings during a load
MAX_IN_FLIGHT = 64  # requests per load; beyond, a tick is skipped rather than queued


class _Load:
    def __init__(self, job: loadspec.LoadJob, deadline: float) -> None:
        self.job = job
        self.deadline = deadline
        self.task: asyncio.Task | None = None
        self.sent = 0


class LoadGenerator:
    def __init__(self, kube: Kube, timeout: float = 10.0) -> None:
        self.kube = kube
        self.timeout = timeout
        self.loads: dict[tuple[str, str], _Load] = {}
        self._starting = asyncio.Lock()

    async def handle(self, request: web.Request) -> web.Response:
        try:
            job = loadspec.parse_request(await request.json())
        except ValueError as exc:  # bad JSON or a refused field
            return web.json_response({"error": str(exc)}, status=400)
        async with self._starting:  # one load per revision, even for calls at once
            deadline = time.monotonic() + job.duration
            load = self.loads.get(job.key)
            if load is not None and load.task is not None and not load.task.done():
                load.deadline = max(load.deadline, deadline)
                load.job = job  # the newest rate and batch apply
                state = "extended"
            else:
                # Checked before answering, so a load that cannot run fails its hook.
                try:
                    urls, rows = await self._prepare(job)
                except pods.CouldNotRun as exc:
                    return web.json_response({"error": str(exc)}, status=503)
                except pods.ValidationError as exc:
                    return web.json_response({"error": str(exc)}, status=422)
                load = self.loads[job.key] = _Load(job, deadline)
                load.task = asyncio.get_running_loop().create_task(self._run(load, urls, rows))
                state = "started"
        log.info("load %s on %s/%s: %g req/s for %gs", state, job.namespace, job.revision,
                 job.rate, job.duration)  # fmt: skip
        return web.json_response(
            {"status": state, "revision": job.revision, "rate": job.rate, "duration": job.duration}
        )

    async def aclose(self) -> None:
        for load in self.loads.values():
            if load.task is not None:
                load.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await load.task
        self.loads.clear()

    async def _urls(self, job: loadspec.LoadJob) -> list[str]:
        return loadspec.ready_urls(
            await self.kube.list_pods(job.namespace, job.revision), manifests.PORT
        )

    async def _prepare(self, job: loadspec.LoadJob) -> tuple[list[str], list[dict[str, Any]]]:
        """The candidate's Ready pods and its validation rows (as /predict records)."""
        try:
            urls = await self._urls(job)
        except Exception as exc:  # the API server is unreachable or refuses
            raise pods.CouldNotRun(f"cannot list the pods of {job.revision}: {exc}") from None
        if not urls:
            raise pods.CouldNotRun(f"no Ready pod of {job.revision} to send load to")
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            doc = await pods._validation_set(http, urls[0], job.model)
        rows = [dict(zip(doc["features"], row, strict=True)) for row in doc.get("rows") or ()]
        if not rows:
            raise pods.ValidationError(f"the validation set of {job.revision} has no rows")
        return urls, rows

    async def _run(self, load: _Load, urls: list[str], rows: list[dict[str, Any]]) -> None:
        job = load.job
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                await self._replay(load, http, urls, rows)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a load that cannot go on must not take the operator down
            log.warning("load on %s/%s stopped: %s", job.namespace, job.revision, exc)
        finally:
            if self.loads.get(job.key) is load:
                del self.loads[job.key]

    async def _replay(
        self, load: _Load, http: httpx.AsyncClient, urls: list[str], rows: list[dict[str, Any]]
    ) -> None:
        in_flight: set[asyncio.Task] = set()
        next_at = refreshed = time.monotonic()
        i = 0
        while next_at < load.deadline:
            job = load.job
            requests = loadspec.batches(rows, job.batch)
            if time.monotonic() - refreshed > REFRESH_PODS:
                urls = await self._urls(job) or urls
                refreshed = time.monotonic()
            if len(in_flight) < MAX_IN_FLIGHT:
                task = asyncio.create_task(
                    self._send(http, urls[i % len(urls)], requests[i % len(requests)])
                )
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                load.sent += 1
                i += 1
            next_at += 1.0 / job.rate  # a fixed schedule: slow answers do not lower the rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if in_flight:
            await asyncio.wait(in_flight, timeout=self.timeout)

    async def _send(self, http: httpx.AsyncClient, url: str, rows: list[dict]) -> None:
        try:
            r = await http.post(f"{url}/predict", json=rows)
            result = "ok" if r.status_code == 200 else "error"
        except httpx.HTTPError:
            result = "error"
        opmetrics.LOADGEN_REQUESTS.labels(result).inc()
