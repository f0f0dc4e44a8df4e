"""The router's HTTP/1.1 server (frontend.py) over real loopback sockets.

Most tests run an `HttpServer` in-process with a small test handler and talk
to it with a raw socket, so that the exact bytes on the wire (pipelining,
early 413, 100-continue, connection close) are what is checked. They run
under uvloop (what `modeldeploy-router` uses) and the default asyncio loop,
and each fails on any ERROR logged by the server or the loop (a protocol
callback that raised, a write after close). The SIGTERM drain runs the real
`modeldeploy-router` process against a slow upstream process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
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
PREDICT = b'{"instances": [[1, 2]]}'


# -- a test handler -------------------------------------------------------------


@dataclass
class App:
    """Echoes the request as JSON, or misbehaves on purpose by path:
    /late?ms=N answers after N ms (an upstream in flight), /hold keeps the
    answer until the test releases it, /boom raises, /twice answers twice,
    /length answers HEAD-style with a content-length and no body, /big
    answers BIG bytes."""

    conns: set[frontend.HttpConnection]  # the server's, to see what is buffered
    seen: list[Request] = field(default_factory=list)
    held: list[Callable[[Reply], None]] = field(default_factory=list)
    buffered: list[int] = field(default_factory=list)  # bytes buffered after each /big

    def __call__(self, req: Request, respond: Callable[[Reply], None]) -> None:
        self.seen.append(req)
        if req.body_too_large:
            respond(Reply.json(413, {"error": "body too large"}))
        elif req.path == b"/late":
            ms = int(parse_qs(req.target.decode().partition("?")[2])["ms"][0])
            asyncio.get_running_loop().call_later(ms / 1000, respond, echo(req))
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
        elif req.path == b"/length":
            respond(Reply(200, [(b"content-length", b"1234")]))
        elif req.path == b"/big":
            respond(Reply(200, [], b"b" * BIG))
            self.buffered.append(buffered(self.conns))
        else:
            respond(echo(req))

    def release(self) -> None:
        for respond in self.held:
            respond(Reply.json(200, {"released": True}))


def echo(req: Request) -> Reply:
    doc = {
        "method": req.method,
        "target": req.target.decode("latin-1"),
        "path": req.path.decode("latin-1"),
        "headers": {k.decode(): v.decode("latin-1") for k, v in req.headers},
        "body": req.body.decode("latin-1"),
    }
    return Reply.json(200, doc)


def buffered(conns: set[frontend.HttpConnection]) -> int:
    """Answer bytes written but not yet taken by the kernel."""
    return sum(c.transport.get_write_buffer_size() for c in conns)


# -- a raw client -----------------------------------------------------------------


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

    async def closing(self, status: int) -> Answer:
        """The answer, which must carry `status` and `connection: close` and be
        followed by the server closing the connection (not a reset)."""
        ans = await self.answer()
        assert ans.status == status, ans
        assert ans.headers["connection"] == "close"
        assert await self.at_eof()
        return ans

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


# -- running a case on each loop, failing on logged errors --------------------------


@dataclass
class Served:
    server: frontend.HttpServer
    app: App
    port: int

    async def connect(self) -> Client:
        return Client(*await asyncio.open_connection("127.0.0.1", self.port))

    async def assert_serving(self) -> None:
        client = await self.connect()
        client.send(get("/ok"))
        assert (await client.answer()).status == 200
        await client.close()


Case = Callable[[Served, Client], Awaitable[None]]


@pytest.fixture(params=list(LOOPS))
def run(request, caplog) -> Callable[..., None]:
    """run(coro, allow=()) runs `coro` on a fresh loop of the parametrized kind
    and fails on any ERROR record whose message contains none of `allow`."""

    def run(coro: Coroutine, allow: tuple[str, ...] = ()) -> None:
        caplog.clear()
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
            runner.run(asyncio.wait_for(coro, 20))
        errors = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.ERROR and not any(a in r.getMessage() for a in allow)
        ]
        assert not errors, errors

    return run


@pytest.fixture
def served(run) -> Callable[..., None]:
    """served(case, allow=(), **HttpServer options) awaits case(served, client)
    with a fresh in-process server and a raw client connected to it."""

    def served(case: Case, allow: tuple[str, ...] = (), **options) -> None:
        async def main() -> None:
            options.setdefault("max_body_bytes", LIMIT)
            server = frontend.HttpServer(App(set()), **options)
            server.handler.conns = server.connections
            srv = Served(server, server.handler, free_port())
            await server.listen("127.0.0.1", srv.port)
            client = await srv.connect()
            try:
                await case(srv, client)
            finally:
                await client.close()
                await server.drain(1.0)

        run(main(), allow)

    return served


async def until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT}s")
        await asyncio.sleep(0.005)


# -- 1. keep-alive ----------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        for i in range(3):
            client.send(post(f"/echo/{i}", b"x" * i))
            ans = await client.answer()
            assert ans.status == 200
            assert "connection" not in ans.headers
            assert ans.json()["target"] == f"/echo/{i}"
            assert ans.json()["body"] == "x" * i
        assert len(srv.server.connections) == 1  # one connection did it all

    served(case)


@pytest.mark.parametrize(
    "request_bytes",
    [get("/one", version="1.0"), get("/one", "Connection: close")],
    ids=["http10", "connection-close"],
)
def test_closing_requests_get_connection_close_and_eof(served, request_bytes: bytes) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(request_bytes)
        assert (await client.closing(200)).json()["target"] == "/one"

    served(case)


def test_http10_with_keep_alive_stays_open(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        for _ in range(2):
            client.send(get("/one", "Connection: keep-alive", version="1.0"))
            ans = await client.answer()
            assert ans.status == 200
            assert "connection" not in ans.headers

    served(case)


# -- 2. pipelining and flow control ---------------------------------------------------


def test_pipelined_requests_are_answered_in_order(served) -> None:
    targets = ["/late?ms=80", "/now/1", "/late?ms=10", "/now/2", "/late?ms=40", "/now/3"]

    async def case(srv: Served, client: Client) -> None:
        client.send(b"".join(get(t) for t in targets))  # one send
        assert [(await client.answer()).json()["target"] for _ in targets] == targets
        # the handler saw them in order too, one at a time
        assert [r.target.decode() for r in srv.app.seen] == targets

    served(case)


def test_pipelined_burst_of_500_is_answered_in_order(served) -> None:
    # A late first answer queues the rest (reading pauses past MAX_PIPELINED);
    # the queue is then answered inline, 400 in a row (deep enough that
    # answering them recursively would hit the recursion limit), and a late
    # one makes it stop and resume.
    targets = [f"/late?ms=1&i={i}" if i in (0, 400) else f"/n/{i}" for i in range(500)]

    async def case(srv: Served, client: Client) -> None:
        client.send(b"".join(get(t) for t in targets))
        assert [(await client.answer()).json()["target"] for _ in targets] == targets
        client.send(get("/after"))  # reading resumed
        assert (await client.answer()).json()["target"] == "/after"

    served(case)


def test_client_that_does_not_read_is_not_buffered_without_bound(served) -> None:
    # 400 pipelined requests for 64 KiB each (25 MiB, far more than the socket
    # buffers hold): while the client reads nothing, the server must stop
    # taking requests instead of buffering every answer; then all arrive.
    count = 400

    async def case(srv: Served, client: Client) -> None:
        client.send(get("/big") * count)
        await until(lambda: buffered(srv.server.connections) > BIG, "answers piling up")
        for _ in range(count):
            assert len((await client.answer()).body) == BIG
        assert len(srv.app.buffered) == count
        assert max(srv.app.buffered) < 16 * BIG, max(srv.app.buffered)

    served(case)


# -- 3. chunked bodies and 100-continue ------------------------------------------------


def test_chunked_request_body_is_reassembled(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/c", "Transfer-Encoding: chunked", method="POST"))
        for piece in (b"5\r\nhello\r\n", b"6\r\n wor", b"ld\r\n", b"0\r\n\r\n"):
            client.send(piece)
            await client.writer.drain()
        ans = await client.answer()
        assert ans.status == 200
        assert ans.json()["body"] == "hello world"

    served(case)


def test_expect_100_continue_is_answered_before_the_body(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/e", "Content-Length: 5", "Expect: 100-continue", method="POST"))
        interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), WAIT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert srv.app.seen == []  # nothing handed over before the body
        client.send(b"hello")
        ans = await client.answer()
        assert ans.status == 200
        assert ans.json()["body"] == "hello"

    served(case)


# -- 4. body limit ----------------------------------------------------------------------


def assert_refused_body(srv: Served) -> None:
    [req] = srv.app.seen  # one request reached the handler, without its body
    assert req.body_too_large
    assert req.body == b""


CHUNK = b"%x\r\n%s\r\n" % (600, b"y" * 600)
CHUNKED = get("/big", "Transfer-Encoding: chunked", method="POST")


@pytest.mark.parametrize(
    "head",
    [
        get("/big", f"Content-Length: {LIMIT + 1}", method="POST"),
        get("/big", f"Content-Length: {LIMIT + 1}", "Expect: 100-continue", method="POST"),
    ],
    ids=["plain", "expect-continue"],
)
def test_content_length_over_limit_is_413_before_the_body_is_sent(served, head: bytes) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(head)  # and no body: the 413 comes anyway (and no 100 Continue)
        assert (await client.closing(413)).json() == {"error": "body too large"}
        assert_refused_body(srv)

    served(case)


@pytest.mark.parametrize(
    "data",
    [
        post("/big", b"x" * (LIMIT + 1)) + get("/after"),
        post("/big", b"x" * (256 * 1024)) + get("/after"),
        CHUNKED + CHUNK * 3 + b"0\r\n\r\n" + get("/after"),
    ],
    ids=["length-one-read", "length-many-reads", "chunked"],
)
def test_body_sent_anyway_is_discarded_and_the_413_arrives_without_reset(
    served, data: bytes
) -> None:
    # A client that sends the whole body at once (most do), and a pipelined
    # request after it: the 413 must reach it (no RST from unread input) and
    # nothing after the refused request is handed to the handler.
    async def case(srv: Served, client: Client) -> None:
        client.send(data)
        await client.closing(413)
        assert_refused_body(srv)

    served(case)


def test_chunked_body_growing_over_limit_is_413(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(CHUNKED + CHUNK)
        await client.writer.drain()
        client.send(CHUNK)  # 1200 bytes > LIMIT
        ans = await client.answer()
        assert ans.status == 413
        assert ans.headers["connection"] == "close"
        client.send(CHUNK + b"0\r\n\r\n" + get("/after"))  # the rest is discarded
        assert await client.at_eof()
        assert_refused_body(srv)

    served(case)


# -- 5. header limit and malformed requests ------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        get("/h", *(f"X-Pad-{i}: {'p' * 1000}" for i in range(70))),
        get("/h?" + "q" * (70 * 1024)),
        # a header line that never ends: must not be buffered without bound
        b"GET /h HTTP/1.1\r\nX-Pad: " + b"v" * (200 * 1024),
    ],
    ids=["headers", "url", "unfinished-header"],
)
def test_head_over_64k_is_431_json(served, data: bytes) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(data)
        ans = await client.closing(431)
        assert str(frontend.MAX_HEADER_BYTES) in ans.json()["error"]
        assert srv.app.seen == []
        await srv.assert_serving()

    served(case)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"GET /a b HTTP/1.1\r\n\r\n", "http"),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", "header"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "method"),  # TLS on a plain port
        (get("example.com:443", method="CONNECT"), "example.com:443"),  # authority form
    ],
    ids=["request-line", "header-name", "tls-hello", "connect"],
)
def test_malformed_request_is_400_json_naming_the_problem(
    served, data: bytes, problem: str
) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(data)
        error = (await client.closing(400)).json()["error"]
        assert error.startswith("malformed HTTP request")
        assert problem in error.lower()
        assert srv.app.seen == []
        await srv.assert_serving()

    served(case)


@pytest.mark.parametrize("target", ["/now", "/late?ms=20"])
def test_upgrade_is_answered_over_http11_and_closed(served, target: str) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get(target, "Connection: Upgrade", "Upgrade: h2c") + get("/next"))
        # closed after the answer, not left open until the idle timeout
        assert (await client.closing(200)).json()["target"] == target

    served(case, keep_alive=60)


# -- 6. idle timeout ---------------------------------------------------------------------


def test_idle_connection_is_closed_after_keep_alive(served) -> None:
    async def case(srv: Served, idle: Client) -> None:
        idle.send(get("/one"))
        assert (await idle.answer()).status == 200
        stalled = await srv.connect()
        stalled.send(b"GET /half HTTP/1.1\r\nHost: te")  # a head that never ends
        started = time.monotonic()
        assert await idle.at_eof()
        assert await stalled.at_eof()
        assert time.monotonic() - started >= 0.25  # (uvloop's clock is coarse)
        await stalled.close()
        await srv.assert_serving()

    served(case, keep_alive=0.3)


def test_busy_connection_outlives_keep_alive(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/late?ms=700"))  # several idle sweeps pass meanwhile
        ans = await client.answer()
        assert ans.status == 200
        assert "connection" not in ans.headers
        client.send(get("/again"))  # and the connection is still usable
        assert (await client.answer()).json()["target"] == "/again"

    served(case, keep_alive=0.2)


# -- 7. handler failures --------------------------------------------------------------------


def test_handler_exception_is_500_json_and_the_connection_goes_on(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/boom") + get("/after"))
        ans = await client.answer()
        assert ans.status == 500
        assert ans.json() == {"error": "internal router error"}
        assert (await client.answer()).json()["target"] == "/after"

    served(case, allow=("handler failed for GET b'/boom'",))


@pytest.mark.parametrize("target", ["/twice", "/answer-then-boom"])
def test_second_answer_to_a_request_is_ignored(served, target: str) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get(target) + get("/late?ms=20") + get("/after"))
        first = await client.answer()
        assert first.status == 200
        assert first.json()["target"] == target
        assert (await client.answer()).json()["target"] == "/late?ms=20"
        assert (await client.answer()).json()["target"] == "/after"

    served(case, allow=("handler failed for GET b'/answer-then-boom'",))


# -- 8. HEAD --------------------------------------------------------------------------------


def test_head_answer_has_no_body_and_keeps_content_length(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        # a handler body (echo) is dropped and its length announced; a
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

    served(case)


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
    served, target: str, expected: str
) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get(target))
        doc = (await client.answer()).json()
        assert doc["target"] == expected
        assert doc["path"] == expected.split("?")[0]

    served(case)


# -- 10. client gone while its answer is pending ------------------------------------------------


def test_client_disconnect_while_answer_pending(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/hold") + get("/queued"))
        await until(lambda: len(srv.app.held) == 1, "request handed to the handler")
        client.writer.transport.abort()  # a reset, not a polite close
        await until(lambda: not srv.server.connections, "connection forgotten")
        srv.app.release()  # the answer comes after the client left: no error
        assert [r.target for r in srv.app.seen] == [b"/hold"]  # the queued one dropped
        await srv.assert_serving()

    served(case)


# -- 11. drain in-process --------------------------------------------------------------------


def test_drain_finishes_in_flight_closes_idle_and_returns_early(served) -> None:
    async def case(srv: Served, busy: Client) -> None:
        idle = await srv.connect()
        idle.send(get("/one"))
        assert (await idle.answer()).status == 200
        busy.send(get("/hold"))
        await until(lambda: len(srv.app.held) == 1, "request in flight")
        drain = asyncio.create_task(srv.server.drain(grace=60))
        assert await idle.at_eof()  # idle: closed at once
        with pytest.raises(OSError):  # no longer accepting
            await srv.connect()
        assert not drain.done()  # waits for the request in flight
        srv.app.release()
        assert (await busy.closing(200)).json() == {"released": True}
        await asyncio.wait_for(drain, WAIT)  # early: long before the grace
        await idle.close()

    served(case)


def test_drain_gives_up_after_grace(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/hold"))
        await until(lambda: len(srv.app.held) == 1, "request in flight")
        started = time.monotonic()
        await asyncio.wait_for(srv.server.drain(grace=0.3), WAIT)
        assert time.monotonic() - started >= 0.3
        assert await client.at_eof()  # closed without an answer
        srv.app.release()  # an answer after the drain is harmless

    served(case)


# -- 12. SIGTERM on the real router ---------------------------------------------------------------


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


# -- 13. x-request-id ------------------------------------------------------------------------------


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
    cases = [  # (headers, body, the router's status)
        ({}, PREDICT, 200),
        ({}, b"[" + b"0," * 100 + b"0]", 413),
        ({"x-modeldeploy-track": "blue"}, PREDICT, 400),
    ]
    ids: list[str] = []

    async def main() -> None:
        async with router_serving(upstream) as (router, base), httpx.AsyncClient() as http:

            async def check(headers: dict, body: bytes, status: int) -> None:
                resp = await http.post(f"{base}/predict", content=body, headers=headers)
                assert resp.status_code == status, resp.text
                assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["x-request-id"])
                ids.append(resp.headers["x-request-id"])
                headers = {**headers, "x-request-id": "rid-7"}
                kept = await http.post(f"{base}/predict", content=body, headers=headers)
                assert kept.status_code == status
                assert kept.headers.get_list("x-request-id") == ["rid-7"]

            for headers, body, status in cases:
                await check(headers, body, status)
            router.apply(RoutingTable(model="iris"))  # no stable track: 503
            await check({}, PREDICT, 503)

    run(main())
    assert len(set(ids)) == len(ids)  # a new id per request
    seen = httpx.get(f"{upstream}/_stats").json()["request_ids"]
    assert seen == [ids[0], "rid-7"]  # the upstream got the same ids
