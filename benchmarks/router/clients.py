"""Which async HTTP client should the router forward with? aiohttp vs httpx vs
the router's `Upstream` (modeldeploy_router.upstream: aiohttp with a session
per endpoint and its proxy-unsafe defaults off).

Each sends the same POST to the same upstream with the same concurrency over
pooled keep-alive connections; the figure that matters is requests per second
of one Python process (the router's hop). Run from the repository root:

    .venv/bin/python -m benchmarks.router.clients [--requests 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import uvloop
from modeldeploy_router.upstream import Upstream

UPSTREAM_APP = Path(__file__).resolve().parents[2] / "tests" / "router" / "upstream_app.py"
BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}'


async def with_aiohttp(url: str, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> None:
            async with sem, session.post(url, data=BODY) as resp:
                await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - started)


async def with_httpx(url: str, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one() -> None:
            async with sem:
                (await client.post(url, content=BODY)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - started)


async def with_router_client(url: str, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    client = Upstream(1.0, 30.0)
    base, path = url.rsplit("/", 1)
    headers = [(b"content-type", b"application/json")]

    async def one() -> None:
        async with sem:
            resp = await client.call(base, "POST", b"/" + path.encode(), headers, BODY, 30, 1 << 20)
            assert resp.status == 200

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    await client.close()
    return n / (time.perf_counter() - started)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    upstream = subprocess.Popen(
        [sys.executable, str(UPSTREAM_APP), "--port", str(port)], start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/predict"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/v2/health/live")
                break
            time.sleep(0.1)
        clients = (
            ("router", with_router_client),
            ("aiohttp", with_aiohttp),
            ("httpx", with_httpx),
        )
        for name, fn in clients * 2:
            rps = uvloop.run(fn(url, args.requests, args.concurrency))
            print(f"{name:<8} {rps:8.0f} req/s")
    finally:
        os.killpg(upstream.pid, signal.SIGTERM)
        upstream.wait(timeout=10)


if __name__ == "__main__":
    main()
