"""A real HTTP webhook receiver for the tests (aiohttp on 127.0.0.1, free port).

Every path records the JSON bodies it got; `answers[path]` is a list of status
codes answered in turn (the last one repeats), `delay[path]` seconds to wait
before answering. Runs in its own thread and loop, so both async unit tests
and cluster tests (where the operator is another process) can use it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from typing import Any

from aiohttp import web


class Receiver:
    def __init__(self) -> None:
        self.bodies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.answers: dict[str, list[int]] = {}
        self.delay: dict[str, float] = {}
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def got(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies[path])

    def answer(self, path: str, *codes: int) -> None:
        with self._lock:
            self.answers[path] = list(codes)

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.json()
        with self._lock:
            self.bodies[path].append(body)
            codes = self.answers.get(path, [200])
            code = codes.pop(0) if len(codes) > 1 else codes[0]
        if self.delay.get(path):
            await asyncio.sleep(self.delay[path])
        return web.json_response({"path": path}, status=code)

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # the port the OS chose

    def __enter__(self) -> Receiver:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
