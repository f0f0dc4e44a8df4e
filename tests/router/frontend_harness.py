"""Harness for the router's HTTP server tests (test_frontend*.py): a test
handler that misbehaves on purpose by path, a raw socket client that checks
exact bytes, and the `run` / `served` fixtures (registered in conftest.py)
that run each case under uvloop and the default asyncio loop and fail on any
ERROR the server or the loop logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import orjson
import pytest
import uvloop
from modeldeploy_devcluster.procs import free_port
from modeldeploy_router import frontend, proxy, static
from modeldeploy_router.frontend import Reply, Request
from modeldeploy_router.routing import RoutingTable

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


@contextlib.asynccontextmanager
async def router_serving(
    settings: proxy.Settings, table: RoutingTable, port: int | None = None
) -> AsyncIterator[tuple[proxy.Router, str]]:
    """A real `proxy.Router` on its HTTP server, in-process on a loopback port,
    for routing tables static mode cannot express; yields (router, base URL)."""
    router = proxy.Router(settings, static.StaticSource(table))
    await router.start()
    server = frontend.HttpServer(router.handle, max_body_bytes=settings.max_body_bytes)
    port = port or free_port()
    await server.listen("127.0.0.1", port)
    try:
        yield router, f"http://127.0.0.1:{port}"
    finally:
        await server.drain(grace=5)
        await router.stop()
