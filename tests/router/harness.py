"""Harness for the router's HTTP tests: the real router (proxy.Router on its
uvicorn server) in-process on a free loopback port, a scripted raw-socket
backend (an asyncio server whose every connection runs a test's script), a raw
socket client that checks exact bytes, and the `run` fixture (registered in
conftest.py) that runs each case under uvloop and the default asyncio loop and
fails on any ERROR the router or the loop logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace

import orjson
import pytest
import uvloop
from modeldeploy_devcluster.procs import free_port
from modeldeploy_router import proxy, server, static
from modeldeploy_router.routing import EndpointPool, RoutingTable, Track
from modeldeploy_router.settings import Settings

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
WAIT = 5.0  # bound on every wait for an answer or a close (never reached when passing)
LIMIT = 1000  # max_body_bytes of the test routers
SETTINGS = Settings(model="iris", max_body_bytes=LIMIT, mirror_in_process=True, timeout=5.0)
PREDICT = b'{"instances": [[1, 2]]}'


# -- a scripted backend ------------------------------------------------------------


@dataclass
class Head:
    method: str
    target: str
    headers: dict[str, str]
    raw: bytes


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """One request head, or None at EOF."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    line, *lines = raw.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, _ = line.split(" ", 2)
    headers = {}
    for item in lines:
        name, _, value = item.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Head(method, target, headers, raw)


async def read_request(reader: asyncio.StreamReader) -> tuple[Head, bytes] | None:
    """A request with a content-length or chunked body, or None at EOF."""
    head = await read_head(reader)
    if head is None:
        return None
    if "content-length" in head.headers:
        return head, await reader.readexactly(int(head.headers["content-length"]))
    body = b""
    if head.headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
            if size == 0:
                return head, body
    return head, body


def response(status: int = 200, body: bytes = b"ok", *headers: str, reason: str = "OK") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *headers]
    if not any(h.lower().startswith("content-length") for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


Script = Callable[["Backend", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


BIG = 64 * 1024  # size of a /big answer


async def echo_script(backend: Backend, reader, writer) -> None:
    """Answers every request with its method, target, headers and body as
    JSON; /late?ms=N after N ms, /big with BIG bytes."""
    while (req := await read_request(reader)) is not None:
        head, body = req
        backend.requests.append((head, body))
        path, _, query = head.target.partition("?")
        if path == "/late":
            await asyncio.sleep(int(query.split("=")[1].split("&")[0]) / 1000)
        if head.method == "HEAD":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 123\r\n\r\n")
        elif path == "/big":
            writer.write(response(200, b"b" * BIG))
        else:
            doc = {"method": head.method, "target": head.target, "body": body.decode("latin-1"),
                   "headers": head.headers}  # fmt: skip
            writer.write(response(200, orjson.dumps(doc), "Content-Type: application/json"))
        await writer.drain()


@dataclass
class Backend:
    """An asyncio server on a free loopback port running `script` per connection."""

    script: Script
    port: int = 0
    requests: list[tuple[Head, bytes]] = field(default_factory=list)
    connections: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Backend:
        async def handle(reader, writer) -> None:
            self.connections += 1
            self.writers.append(writer)
            with contextlib.suppress(
                ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError
            ):
                await self.script(self, reader, writer)
            writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.transport.abort()


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
        if head_only or int(status) in (204, 304):
            body = b""
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                body += await asyncio.wait_for(self.reader.readexactly(size + 2), WAIT)
                if size == 0:
                    break
            body = body[:-2] if body.endswith(b"\r\n") else body
        else:
            length = int(headers.get("content-length", "0"))
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


# -- the router in-process -------------------------------------------------------------


def table(**pools: tuple[str, ...] | str) -> RoutingTable:
    """A routing table: table(stable=url, canary=(url, url), weight=...)."""
    weight = float(pools.pop("weight", 0))  # type: ignore[arg-type]
    mirror = float(pools.pop("mirror", 0))  # type: ignore[arg-type]
    tracks = {
        name: Track(name=name, version=name, pool=EndpointPool((urls,) if isinstance(urls, str)
                                                                else urls))
        for name, urls in pools.items()
    }  # fmt: skip
    return RoutingTable(model="iris", canary_weight=weight, mirror_percent=mirror, tracks=tracks)


@dataclass
class Served:
    router: proxy.Router
    server: server.Server
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def connect(self) -> Client:
        return Client(*await asyncio.open_connection("127.0.0.1", self.port))

    async def exchange(self, data: bytes, head_only: bool = False) -> Answer:
        """One request on a new connection."""
        client = await self.connect()
        try:
            client.send(data)
            return await client.answer(head_only)
        finally:
            await client.close()

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        text = self.router.metrics.exposition().decode()
        wanted = set(labels.items())
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and wanted <= set(s.labels.items())
        )


@contextlib.asynccontextmanager
async def serving(routes: RoutingTable, **settings) -> AsyncIterator[Served]:
    """The real router on its HTTP server, in-process on a free loopback port."""
    config = replace(SETTINGS, **settings)
    router = proxy.Router(config, static.StaticSource(routes))
    await router.start()
    srv = server.Server(router, config)
    port = free_port()
    await srv.listen("127.0.0.1", port)
    try:
        yield Served(router, srv, port)
    finally:
        await srv.drain(grace=2)
        await router.stop()


# -- running a case on each loop, failing on logged errors --------------------------


@pytest.fixture(params=list(LOOPS))
def run(request, caplog) -> Callable[..., None]:
    """run(coro, allow=()) runs `coro` on a fresh loop of the parametrized kind
    and fails on any ERROR record whose message contains none of `allow`."""

    def run(coro: Coroutine, allow: tuple[str, ...] = ()) -> None:
        caplog.clear()
        caplog.set_level(logging.INFO)
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
            runner.run(asyncio.wait_for(coro, 30))
        errors = [
            f"{r.name}: {r.getMessage()}"
            for r in caplog.records
            if r.levelno >= logging.ERROR
            and not any(a in r.getMessage() for a in allow)
            and _shown(r)
        ]
        assert not errors, errors

    return run


def _shown(record: logging.LogRecord) -> bool:
    """Whether a handler would print it (the router's filters applied)."""
    return all(f.filter(record) for f in logging.getLogger(record.name).filters)


async def until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT}s")
        await asyncio.sleep(0.005)
