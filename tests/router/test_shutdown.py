"""The router shutting down: `Server.drain` in-process (harness.py), and
SIGTERM on the real `modeldeploy-router` process against a slow upstream
process (the request in flight still gets its answer; exit 0 within
--drain-seconds).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from tests.router.harness import (
    PREDICT,
    WAIT,
    Backend,
    echo_script,
    get,
    serving,
    table,
    until,
)

# -- drain in-process --------------------------------------------------------------------


def test_drain_finishes_in_flight_closes_idle_and_returns_early(run) -> None:
    async def main() -> None:
        async with Backend(echo_script) as backend, serving(table(stable=backend.url)) as srv:
            idle, busy = await srv.connect(), await srv.connect()
            idle.send(get("/one"))
            assert (await idle.answer()).status == 200
            busy.send(get("/late?ms=600"))
            await until(lambda: len(backend.requests) == 2, "request in flight")
            drain = asyncio.create_task(srv.server.drain(grace=60))
            assert await idle.at_eof()  # idle: closed at once
            await until(lambda: not srv.server.uvicorn.servers[0].is_serving(), "closed")
            with pytest.raises(OSError):  # no longer accepting
                await srv.connect()
            assert not drain.done()  # waits for the request in flight
            assert (await busy.closing(200)).json()["target"] == "/late?ms=600"
            await asyncio.wait_for(drain, WAIT)  # early: long before the grace
            for client in (idle, busy):
                await client.close()

    run(main())


def test_drain_gives_up_after_grace(run) -> None:
    async def main() -> None:
        async with Backend(echo_script) as backend, serving(table(stable=backend.url)) as srv:
            client = await srv.connect()
            client.send(get("/late?ms=3000"))
            await until(lambda: backend.requests, "request in flight")
            started = time.monotonic()
            await asyncio.wait_for(srv.server.drain(grace=0.3), WAIT)
            assert time.monotonic() - started >= 0.3
            assert await client.at_eof()  # closed without an answer
            await client.close()

    run(main())


def test_drain_delay_keeps_accepting_and_closes_after_each_answer(run) -> None:
    async def main() -> None:
        async with Backend(echo_script) as backend, serving(table(stable=backend.url)) as srv:
            old = await srv.connect()
            old.send(get("/one"))
            assert (await old.answer()).status == 200
            drain = asyncio.create_task(srv.server.drain(grace=5, delay=1.0))
            await until(lambda: srv.router.draining, "drain started")
            new = await srv.connect()  # still accepted during the delay
            new.send(get("/two"))
            await new.closing(200)  # answered, then closed
            old.send(get("/three"))  # a kept-alive connection: its next answer closes it
            await old.closing(200)
            new2 = await srv.connect()
            new2.send(get("/readyz"))
            assert (await new2.closing(503)).json()["error"] == "shutting down"
            assert not drain.done()
            await asyncio.wait_for(drain, WAIT)
            with pytest.raises(OSError):  # then no longer accepting
                await srv.connect()
            for client in (old, new, new2):
                await client.close()

    run(main())


# -- SIGTERM on the real router ---------------------------------------------------------------


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def start_slow_router(
    procs, wait, delay: str, drain: str
) -> tuple[subprocess.Popen, Future[httpx.Response], int]:
    """A router before an upstream answering after `delay` seconds, with one
    request in flight: (the router process, the pending answer's future, port)."""
    upstream = procs.upstream("stable", "--delay", delay)
    router = procs.router("--backend", f"stable={upstream}", "--drain-seconds", drain)
    pool = ThreadPoolExecutor(1)
    pending = pool.submit(httpx.post, f"{router}/predict", content=PREDICT, timeout=10)
    pool.shutdown(wait=False)
    wait(lambda: httpx.get(f"{upstream}/_stats").json()["count"] == 1, message="in flight")
    return procs.procs[-1], pending, int(router.rsplit(":", 1)[1])


def test_sigterm_lets_the_request_in_flight_finish(procs, wait) -> None:
    proc, pending, port = start_slow_router(procs, wait, delay="1.0", drain="20")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    wait(lambda: refused(port), message="listener closed")
    resp = pending.result(timeout=10)
    assert resp.status_code == 200
    assert resp.json()["predictions"]
    assert resp.headers["connection"] == "close"
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 10  # once the request was done, not after 20 s
    # /readyz answering 503 while draining is not checked: the listener closes
    # when the drain starts and idle connections are closed at once, so no
    # client can reach /readyz during the drain.


def test_sigterm_exits_after_drain_seconds_when_upstream_is_slower(procs, wait) -> None:
    proc, pending, _ = start_slow_router(procs, wait, delay="2.5", drain="0.5")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 2  # not waiting for the upstream
    with pytest.raises(httpx.HTTPError):  # closed without an answer
        pending.result(timeout=10)
