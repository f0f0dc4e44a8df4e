"""A steady, bounded load through the router, as users would send it.

An asyncio loop in a background thread sends single-row `/predict` requests
at a fixed rate with at most `concurrency` in flight (a slow server never
makes the generator pile up requests). Every answer is recorded as
(seconds since start, HTTP status, model version) so that the demo can prove
which versions users actually got.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx


class Load:
    def __init__(
        self,
        url: str,
        rows: Sequence[dict[str, float]],
        rate: float = 25.0,
        concurrency: int = 16,
        t0: float | None = None,
    ) -> None:
        self.url, self.rows, self.rate, self.concurrency = url, rows, rate, concurrency
        self.t0 = time.monotonic() if t0 is None else t0
        self.answers: list[tuple[float, int, str]] = []  # (t, status or -1, version)
        self._lock = threading.Lock()
        self._read = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def since_last(self) -> tuple[Counter[str], int]:
        """Versions answered (200) and failures since the previous call."""
        with self._lock:
            new = self.answers[self._read :]
            self._read = len(self.answers)
        served = Counter(v for _, code, v in new if code == 200)
        return served, sum(1 for _, code, _ in new if code != 200)

    def snapshot(self) -> list[tuple[float, int, str]]:
        with self._lock:
            return list(self.answers)

    async def _run(self) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[Any]] = set()
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, timeout=5, limits=limits) as http:
            n = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                next_at += 1.0 / self.rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                await gate.acquire()
                task = asyncio.create_task(self._one(http, self.rows[n % len(self.rows)], gate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            if tasks:
                await asyncio.wait(tasks, timeout=5)

    async def _one(self, http: httpx.AsyncClient, row: dict[str, float], gate: Any) -> None:
        t = time.monotonic() - self.t0
        try:
            r = await http.post("/predict", json=[row])
            code = r.status_code
            version = r.json().get("version", "") if code == 200 else ""
        except (httpx.HTTPError, ValueError):
            code, version = -1, ""
        finally:
            gate.release()
        with self._lock:
            self.answers.append((t, code, version))
