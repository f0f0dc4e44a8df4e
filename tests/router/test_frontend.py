"""The router's HTTP/1.1 server (frontend.py) over real loopback sockets.

Most tests run an `HttpServer` in-process with a small test handler and talk
to it with raw sockets, so that the exact bytes on the wire (pipelining,
early 413, 100-continue, connection close) are what is checked. They run
under uvloop (what `modeldeploy-router` uses) and the default asyncio loop,
and every one of them fails on any ERROR logged by the server or the loop (a
protocol callback that raised, a write after close). The SIGTERM drain runs
the real `modeldeploy-router` process against a slow upstream process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
import uvloop
from modeldeploy_devcluster.procs import free_port
from modeldeploy_router import frontend, proxy, static
from modeldeploy_router.frontend import Reply, Request
from modeldeploy_router.routing import EndpointPool, RoutingTable, Track

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
WAIT = 5.0  # bound on every wait for an answer or a close (never reached when passing)
LIMIT = 1000  # max_body_bytes of the test servers
BIG = 64 * 1024  # size of a /big answer


# -- running a coroutine on each loop, failing on logged errors ----------------


@pytest.fixture(params=list(LOOPS))
def run(request, caplog) -> Callable[..., object]:
    """run(coro, allow=()) runs `coro` on a fresh loop of the parametrized kind
    and fails on any ERROR record whose message contains none of `allow`."""

    def run(coro: Coroutine, allow: tuple[str, ...] = ()) -> object:
        caplog.clear()
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
            result = runner.run(asyncio.wait_for(coro, 20))
        errors = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.ERROR and not any(a in r.getMessage() for a in allow)
        ]
        assert not errors, errors
        return result

    return run


async def until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.005)


# -- a test handler -------------------------------------------------------------


@dataclass
class App:
    """Echoes the request as JSON, or misbehaves on purpose by path:
    /late?ms=N answers after N ms (an upstream in flight), /hold keeps the
    answer until the test releases it, /boom raises, /twice answers twice,
    /length answers HEAD-style with a content-length and no body."""

    seen: list[Request] = field(default_factory=list)
    held: list[Callable[[Reply], None]] = field(default_factory=list)
    late_answered: int = 0
    conns: set = field(default_factory=set)  # the server's connections (for /big)
    buffered: list[int] = field(default_factory=list)  # bytes buffered after each /big

    def __call__(self, req: Request, respond: Callable[[Reply], None]) -> None:
        self.seen.append(req)
        if req.body_too_large:
            respond(Reply.json(413, {"error": "body too large"}))
        elif req.path == b"/late":
            ms = int(parse_qs(req.target.decode().partition("?")[2])["ms"][0])
            asyncio.get_running_loop().call_later(ms / 1000, self._late, respond, echo(req))
        elif req.path == b"/hold":
            self.held.append(respond)
        elif req.path == b"/boom":
            raise RuntimeError("test handler bug")
        elif req.path == b"/twice":
            respond(echo(req))
            respond(Reply.json(500, {"error": "second answer"}))
        elif req.path == b"/answer-then-boom":
            respond(echo(req))
            raise RuntimeError("test handler bug after answering")
        elif req.path == b"/big":
            respond(Reply(200, [], b"b" * BIG))
            self.buffered.append(buffered(self.conns))
        elif req.path == b"/length":
            respond(Reply(200, [(b"content-length", b"1234")]))
        else:
            respond(echo(req))

    def _late(self, respond: Callable[[Reply], None], reply: Reply) -> None:
        respond(reply)
        self.late_answered += 1

    def release(self) -> None:
        for respond in self.held:
            respond(Reply.json(200, {"released": True}))


def buffered(conns: set[frontend.HttpConnection]) -> int:
    """Answer bytes written but not yet taken by the kernel."""
    return sum(c.transport.get_write_buffer_size() for c in conns)


def echo(req: Request) -> Reply:
    doc = {
        "method": req.method,
        "target": req.target.decode("latin-1"),
        "path": req.path.decode("latin-1"),
        "headers": {k.decode(): v.decode("latin-1") for k, v in req.headers},
        "body": req.body.decode("latin-1"),
    }
    return Reply.json(200, doc)


@dataclass
class Served:
    server: frontend.HttpServer
    app: App
    port: int

    async def connect(self) -> Client:
        return Client(*await asyncio.open_connection("127.0.0.1", self.port))


@contextlib.asynccontextmanager
async def serving(max_body_bytes: int = LIMIT, keep_alive: float = 5.0) -> AsyncIterator[Served]:
    app = App()
    server = frontend.HttpServer(app, max_body_bytes=max_body_bytes, keep_alive=keep_alive)
    app.conns = server.connections
    port = free_port()
    await server.listen("127.0.0.1", port)
    try:
        yield Served(server, app, port)
    finally:
        await server.drain(1.0)


# -- a raw client ---------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    names: list[str]  # every header name in order, repeats included
    body: bytes

    def json(self) -> dict:
        return orjson.loads(self.body)


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def answer(self, head_only: bool = False) -> Answer:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)
        status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        version, status, _ = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        pairs = [line.split(":", 1) for line in lines]
        headers = {k.lower(): v.strip() for k, v in pairs}
        length = 0 if head_only else int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), WAIT)
        return Answer(int(status), headers, [k.lower() for k, _ in pairs], body)

    async def at_eof(self, timeout: float = WAIT) -> bool:
        """True when the server closes the connection with nothing more sent."""
        return await asyncio.wait_for(self.reader.read(), timeout) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def get(target: str, *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: test", *headers, "", ""]
    return "\r\n".join(lines).encode()


def post(target: str, body: bytes, *headers: str) -> bytes:
    return get(target, f"Content-Length: {len(body)}", *headers, method="POST") + body


# -- 1. keep-alive ----------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            for i in range(3):
                client.send(post(f"/echo/{i}", b"x" * i))
                ans = await client.answer()
                assert ans.status == 200
                assert "connection" not in ans.headers
                assert ans.json()["target"] == f"/echo/{i}"
                assert ans.json()["body"] == "x" * i
            assert len(srv.server.connections) == 1  # one connection did it all
            await client.close()

    run(case())


@pytest.mark.parametrize(
    "request_bytes",
    [get("/one", version="1.0"), get("/one", "Connection: close")],
    ids=["http10", "connection-close"],
)
def test_closing_requests_get_connection_close_and_eof(run, request_bytes: bytes) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(request_bytes)
            ans = await client.answer()
            assert ans.status == 200
            assert ans.headers["connection"] == "close"
            assert await client.at_eof()
            await client.close()

    run(case())


def test_http10_with_keep_alive_stays_open(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            for _ in range(2):
                client.send(get("/one", "Connection: keep-alive", version="1.0"))
                ans = await client.answer()
                assert ans.status == 200
                assert "connection" not in ans.headers
            await client.close()

    run(case())


# -- 2. pipelining ------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(run) -> None:
    targets = ["/late?ms=80", "/now/1", "/late?ms=10", "/now/2", "/late?ms=40", "/now/3"]

    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(b"".join(get(t) for t in targets))  # one send
            got = [(await client.answer()).json()["target"] for _ in targets]
            assert got == targets
            # the handler saw them in order too, one at a time
            assert [r.target.decode() for r in srv.app.seen] == targets
            await client.close()

    run(case())


def test_pipelined_burst_of_200_is_answered_in_order(run) -> None:
    # A late first answer queues the rest (reading pauses past MAX_PIPELINED);
    # the queue is then answered inline, and a few late ones in between
    # make it stop and resume.
    targets = [f"/late?ms=1&i={i}" if i % 50 == 0 else f"/n/{i}" for i in range(200)]

    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(b"".join(get(t) for t in targets))
            got = [(await client.answer()).json()["target"] for _ in targets]
            assert got == targets
            client.send(get("/after"))  # reading resumed
            assert (await client.answer()).json()["target"] == "/after"
            await client.close()

    run(case())


def test_client_that_does_not_read_is_not_buffered_without_bound(run) -> None:
    # 400 pipelined requests for 64 KiB each (25 MiB, far more than the socket
    # buffers hold): while the client reads nothing, the server must stop
    # taking requests instead of buffering every answer; then all arrive.
    count = 400

    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get("/big") * count)
            await until(lambda: buffered(srv.server.connections) > BIG, "answers piling up")
            for _ in range(count):
                assert len((await client.answer()).body) == BIG
            assert len(srv.app.buffered) == count
            assert max(srv.app.buffered) < 16 * BIG, max(srv.app.buffered)
            await client.close()

    run(case())


# -- 3. chunked bodies and 100-continue ------------------------------------------------


def test_chunked_request_body_is_reassembled(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get("/c", "Transfer-Encoding: chunked", method="POST"))
            for piece in (b"5\r\nhello\r\n", b"6\r\n wor", b"ld\r\n", b"0\r\n\r\n"):
                client.send(piece)
                await client.writer.drain()
            ans = await client.answer()
            assert ans.status == 200
            assert ans.json()["body"] == "hello world"
            await client.close()

    run(case())


def test_expect_100_continue_is_answered_before_the_body(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get("/e", "Content-Length: 5", "Expect: 100-continue", method="POST"))
            interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), WAIT)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            assert srv.app.seen == []  # nothing handed over before the body
            client.send(b"hello")
            ans = await client.answer()
            assert ans.status == 200
            assert ans.json()["body"] == "hello"
            await client.close()

    run(case())


# -- 4. body limit ----------------------------------------------------------------------


def assert_refused_body(srv: Served) -> None:
    [req] = srv.app.seen  # one request reached the handler, without its body
    assert req.body_too_large
    assert req.body == b""


def test_content_length_over_limit_is_413_before_the_body_is_sent(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get("/big", f"Content-Length: {LIMIT + 1}", method="POST"))
            ans = await client.answer()  # no body sent: the answer comes anyway
            assert ans.status == 413
            assert ans.json() == {"error": "body too large"}
            assert ans.headers["connection"] == "close"
            assert await client.at_eof()
            assert_refused_body(srv)
            await client.close()

    run(case())


def test_content_length_over_limit_with_expect_gets_413_not_100(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(
                get("/big", f"Content-Length: {LIMIT + 1}", "Expect: 100-continue", method="POST")
            )
            ans = await client.answer()
            assert ans.status == 413
            assert_refused_body(srv)
            await client.close()

    run(case())


@pytest.mark.parametrize("size", [LIMIT + 1, 256 * 1024], ids=["one-read", "many-reads"])
def test_body_sent_anyway_is_discarded_and_the_413_arrives_without_reset(run, size: int) -> None:
    # A client that sends the whole body at once (most do), followed by a
    # pipelined request: the 413 must reach it (no RST from unread input) and
    # nothing after the refused request is handed to the handler.
    big = b"x" * size

    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(post("/big", big) + get("/after"))
            ans = await client.answer()
            assert ans.status == 413
            assert await client.at_eof()
            assert_refused_body(srv)
            await client.close()

    run(case())


def test_chunked_body_growing_over_limit_is_413(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get("/big", "Transfer-Encoding: chunked", method="POST"))
            chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
            client.send(chunk)
            await client.writer.drain()
            client.send(chunk)  # 1200 bytes > LIMIT
            ans = await client.answer()
            assert ans.status == 413
            assert ans.headers["connection"] == "close"
            client.send(chunk + b"0\r\n\r\n" + get("/after"))  # the rest is discarded
            assert await client.at_eof()
            assert_refused_body(srv)
            await client.close()

    run(case())


def test_chunked_body_over_limit_in_one_send_with_a_pipelined_request(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
            head = get("/big", "Transfer-Encoding: chunked", method="POST")
            client.send(head + chunk * 3 + b"0\r\n\r\n" + get("/after"))
            ans = await client.answer()
            assert ans.status == 413
            assert await client.at_eof()
            assert_refused_body(srv)
            await client.close()

    run(case())


# -- 5. header limit and malformed requests ------------------------------------------------


async def assert_still_serving(srv: Served) -> None:
    client = await srv.connect()
    client.send(get("/ok"))
    assert (await client.answer()).status == 200
    await client.close()


@pytest.mark.parametrize("where", ["headers", "url", "one-unfinished-header"])
def test_head_over_64k_is_431_json(run, where: str) -> None:
    pad = "p" * 1000
    if where == "headers":
        data = get("/h", *(f"X-Pad-{i}: {pad}" for i in range(70)))
    elif where == "url":
        data = get("/h?" + "q" * (70 * 1024))
    else:  # a header value that never ends: must not be buffered without bound
        data = b"GET /h HTTP/1.1\r\nX-Pad: " + b"v" * (200 * 1024)

    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(data)
            ans = await client.answer()
            assert ans.status == 431
            assert "64" in ans.json()["error"] or "65536" in ans.json()["error"]
            assert ans.headers["connection"] == "close"
            assert await client.at_eof()
            assert srv.app.seen == []
            await client.close()
            await assert_still_serving(srv)

    run(case())


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"GET /a b HTTP/1.1\r\n\r\n", "http"),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", "header"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "method"),  # TLS on a plain port
    ],
    ids=["request-line", "header-name", "tls-hello"],
)
def test_malformed_request_is_400_json_naming_the_problem(run, data: bytes, problem: str) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(data)
            ans = await client.answer()
            assert ans.status == 400
            error = ans.json()["error"]
            assert error.startswith("malformed HTTP request")
            assert problem in error.lower()
            assert ans.headers["connection"] == "close"
            assert await client.at_eof()
            assert srv.app.seen == []
            await client.close()
            await assert_still_serving(srv)

    run(case())


def test_connect_request_is_refused_with_json(run) -> None:
    # Authority-form targets are for proxies the router is not.
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get("example.com:443", method="CONNECT"))
            ans = await client.answer()
            assert 400 <= ans.status < 500
            assert "error" in ans.json()
            assert await client.at_eof()
            await client.close()
            await assert_still_serving(srv)

    run(case())


@pytest.mark.parametrize("target", ["/now", "/late?ms=20"])
def test_upgrade_is_answered_over_http11_and_closed(run, target: str) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get(target, "Connection: Upgrade", "Upgrade: h2c") + get("/next"))
            ans = await client.answer()
            assert ans.json()["target"] == target
            assert ans.headers["connection"] == "close"
            assert await client.at_eof(timeout=2)  # not left open until the idle timeout
            await client.close()

    run(case())


# -- 6. idle timeout ---------------------------------------------------------------------


def test_idle_connection_is_closed_after_keep_alive(run) -> None:
    async def case() -> None:
        async with serving(keep_alive=0.3) as srv:
            idle = await srv.connect()
            idle.send(get("/one"))
            assert (await idle.answer()).status == 200
            stalled = await srv.connect()
            stalled.send(b"GET /half HTTP/1.1\r\nHost: te")  # a head that never ends
            started = time.monotonic()
            assert await idle.at_eof(timeout=3)
            assert await stalled.at_eof(timeout=3)
            assert time.monotonic() - started >= 0.25
            assert srv.app.seen[-1].target == b"/one"
            for c in (idle, stalled):
                await c.close()
            await assert_still_serving(srv)

    run(case())


def test_busy_connection_outlives_keep_alive(run) -> None:
    async def case() -> None:
        async with serving(keep_alive=0.2) as srv:
            client = await srv.connect()
            client.send(get("/late?ms=700"))  # several idle sweeps pass meanwhile
            ans = await client.answer()
            assert ans.status == 200
            assert "connection" not in ans.headers
            client.send(get("/again"))  # and the connection is still usable
            assert (await client.answer()).json()["target"] == "/again"
            await client.close()

    run(case())


# -- 7. handler failures --------------------------------------------------------------------


def test_handler_exception_is_500_json_and_the_connection_goes_on(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get("/boom") + get("/after"))
            ans = await client.answer()
            assert ans.status == 500
            assert ans.json() == {"error": "internal router error"}
            assert (await client.answer()).json()["target"] == "/after"
            await client.close()

    run(case(), allow=("handler failed for GET b'/boom'",))


@pytest.mark.parametrize("target", ["/twice", "/answer-then-boom"])
def test_second_answer_to_a_request_is_ignored(run, target: str) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get(target) + get("/late?ms=20") + get("/after"))
            first = await client.answer()
            assert first.status == 200
            assert first.json()["target"] == target
            assert (await client.answer()).json()["target"] == "/late?ms=20"
            assert (await client.answer()).json()["target"] == "/after"
            await client.close()

    run(case(), allow=("handler failed for GET b'/answer-then-boom'",))


# -- 8. HEAD --------------------------------------------------------------------------------


def test_head_answer_has_no_body_and_keeps_content_length(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            # a handler body (echo) is dropped, its length announced; a
            # handler-given content-length is kept as it is
            client.send(get("/echo", method="HEAD") + get("/length", method="HEAD") + get("/n"))
            first = await client.answer(head_only=True)
            assert first.status == 200
            assert int(first.headers["content-length"]) == len(echo(srv.app.seen[0]).body)
            second = await client.answer(head_only=True)
            assert second.headers["content-length"] == "1234"
            assert second.names.count("content-length") == 1
            # had any body byte been written, this would not parse as the next answer
            assert (await client.answer()).json()["target"] == "/n"
            await client.close()

    run(case())


# -- 9. absolute-form target -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://example.com:8080/path?q=1&r", "/path?q=1&r"),
        ("http://example.com", "/"),
        ("http://example.com?q", "/?q"),
    ],
)
def test_absolute_form_target_reaches_the_handler_as_origin_form(
    run, target: str, expected: str
) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get(target))
            doc = (await client.answer()).json()
            assert doc["target"] == expected
            assert doc["path"] == expected.split("?")[0]
            await client.close()

    run(case())


# -- 10. client gone while its answer is pending ------------------------------------------------


def test_client_disconnect_while_answer_pending(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get("/late?ms=50") + get("/queued"))
            await until(lambda: len(srv.app.seen) == 1, "request handed to the handler")
            client.writer.transport.abort()  # reset, not a polite close
            await until(lambda: srv.app.late_answered == 1, "late answer given")
            await until(lambda: not srv.server.connections, "connection forgotten")
            assert [r.target for r in srv.app.seen] == [b"/late?ms=50"]  # queued one dropped
            await assert_still_serving(srv)

    run(case())


# -- 11. drain in-process --------------------------------------------------------------------


def test_drain_finishes_in_flight_closes_idle_and_returns_early(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            busy, idle = await srv.connect(), await srv.connect()
            idle.send(get("/one"))
            assert (await idle.answer()).status == 200
            busy.send(get("/hold"))
            await until(lambda: len(srv.app.held) == 1, "request in flight")
            started = time.monotonic()
            drain = asyncio.create_task(srv.server.drain(grace=10))
            assert await idle.at_eof()  # idle: closed at once
            with pytest.raises(OSError):  # no longer accepting
                await srv.connect()
            assert not drain.done()  # waits for the request in flight
            srv.app.release()
            ans = await busy.answer()
            assert ans.status == 200
            assert ans.json() == {"released": True}
            assert ans.headers["connection"] == "close"
            assert await busy.at_eof()
            await asyncio.wait_for(drain, WAIT)
            assert time.monotonic() - started < 5  # early, not after the grace
            for c in (busy, idle):
                await c.close()

    run(case())


def test_drain_gives_up_after_grace(run) -> None:
    async def case() -> None:
        async with serving() as srv:
            client = await srv.connect()
            client.send(get("/hold"))
            await until(lambda: len(srv.app.held) == 1, "request in flight")
            started = time.monotonic()
            await asyncio.wait_for(srv.server.drain(grace=0.3), WAIT)
            assert 0.29 <= time.monotonic() - started < 3
            assert await client.at_eof()  # closed without an answer
            srv.app.release()  # a late answer after the drain is harmless
            await client.close()

    run(case())


# -- 12. SIGTERM on the real router ---------------------------------------------------------------


PREDICT = b'{"instances": [[1, 2]]}'


def test_sigterm_lets_the_request_in_flight_finish(procs, wait) -> None:
    upstream = procs.upstream("stable", "--delay", "1.0")
    router = procs.router("--backend", f"stable={upstream}", "--drain-seconds", "8")
    proc = procs.procs[-1]
    port = int(router.rsplit(":", 1)[1])
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, f"{router}/predict", content=PREDICT, timeout=10)
        wait(lambda: httpx.get(f"{upstream}/_stats").json()["count"] == 1, message="in flight")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        wait(lambda: "shutting down" in procs.log("router-*.log"), message="drain started")
        with pytest.raises(OSError):  # the listener is closed while the request finishes
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        resp = pending.result(timeout=10)
    assert resp.status_code == 200
    assert resp.json()["predictions"]
    assert resp.headers["connection"] == "close"
    assert proc.wait(timeout=8) == 0
    assert time.monotonic() - started < 8  # returned once the request was done
    # /readyz answering 503 while draining is not checked: the listener closes
    # when the drain starts and idle connections are closed at once, so no
    # client can reach /readyz during the drain.


def test_sigterm_exits_after_drain_seconds_when_upstream_is_slower(procs, wait) -> None:
    upstream = procs.upstream("stable", "--delay", "2.5")
    router = procs.router("--backend", f"stable={upstream}", "--drain-seconds", "0.5")
    proc = procs.procs[-1]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, f"{router}/predict", content=PREDICT, timeout=10)
        wait(lambda: httpx.get(f"{upstream}/_stats").json()["count"] == 1, message="in flight")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 2  # not waiting for the upstream
        with pytest.raises(httpx.HTTPError):  # closed without an answer
            pending.result(timeout=10)


# -- 13. x-request-id ------------------------------------------------------------------------------


RID = re.compile(r"[0-9a-f]{32}")


@contextlib.asynccontextmanager
async def router_serving(stable: str) -> AsyncIterator[tuple[proxy.Router, str]]:
    table = RoutingTable(
        model="iris", tracks={"stable": Track(name="stable", pool=EndpointPool((stable,)))}
    )
    settings = proxy.Settings(
        model="iris", max_body_bytes=100, allow_track_override=True, mirror_in_process=True
    )
    router = proxy.Router(settings, static.StaticSource(table))
    await router.start()
    server = frontend.HttpServer(router.handle, max_body_bytes=settings.max_body_bytes)
    port = free_port()
    await server.listen("127.0.0.1", port)
    try:
        yield router, f"http://127.0.0.1:{port}"
    finally:
        await server.drain(1.0)
        await router.stop()


def test_request_id_generated_or_kept_on_every_answer(run, procs) -> None:
    upstream = procs.upstream("stable")
    cases = {  # what is sent -> the router's status
        "forwarded": ({}, PREDICT, 200),
        "too large": ({}, b"[" + b"0," * 100 + b"0]", 413),
        "bad override": ({"x-modeldeploy-track": "blue"}, PREDICT, 400),
    }

    async def case() -> None:
        async with router_serving(upstream) as (router, base), httpx.AsyncClient() as http:

            async def check(headers: dict, body: bytes, status: int) -> None:
                resp = await http.post(f"{base}/predict", content=body, headers=headers)
                assert resp.status_code == status, resp.text
                generated = resp.headers["x-request-id"]
                assert RID.fullmatch(generated)
                kept = await http.post(
                    f"{base}/predict", content=body, headers={**headers, "x-request-id": "rid-7"}
                )
                assert kept.status_code == status
                assert kept.headers.get_list("x-request-id") == ["rid-7"]
                ids.append(generated)

            ids: list[str] = []
            for headers, body, status in cases.values():
                await check(headers, body, status)
            router.apply(RoutingTable(model="iris"))  # no stable track: 503
            await check({}, PREDICT, 503)
            assert len(set(ids)) == len(ids)  # a new id per request
            seen = httpx.get(f"{upstream}/_stats").json()["request_ids"]
            assert seen == [ids[0], "rid-7"]  # the upstream got the same ids

    run(case())
