"""The router's upstream HTTP/1.1 client: pooled keep-alive connections.

Why not aiohttp or httpx: the router's hop is its whole cost, and measured on
this project's benchmark (benchmarks/README.md) aiohttp's client spent about
130 us of CPU per request and httpx far more, against about 30 us for the
server side. Predictor upstreams speak plain HTTP/1.1 on a pod IP, so this
module keeps only what that needs: an asyncio Protocol per connection,
httptools (the parser uvicorn uses) to read responses, one write per request,
idle connections reused last-in first-out. Bodies go through byte for byte;
no header is added except Host and Content-Length.

The core is callback-driven (`Upstream.send`): on a reused connection the
request is written from the caller's own callback and the completion callback
runs from the response's data_received, with no Task, Future or extra event
loop turn in between. `Upstream.call` wraps it for async callers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

# RFC 9110 section 7.6.1 connection-specific fields, plus the framing headers
# each hop recomputes (and Expect: the router has already read the body).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    }
)
MAX_IDLE_PER_ENDPOINT = 256


class UpstreamConnectionError(ConnectionError):
    """The endpoint could not be reached or closed before answering (retryable
    on another endpoint)."""


class UpstreamProtocolError(Exception):
    """The endpoint answered something that is not HTTP/1.1."""


def forwardable(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop headers and those the Connection header names.

    Names must be lower-case (the router's front end lower-cases them). One
    pass in the usual case; a second only when a Connection header is present
    (it may name more headers to drop)."""
    kept = []
    connection: list[bytes] = []
    for pair in headers:
        name = pair[0]
        if name in HOP_BY_HOP:
            if name == b"connection":
                connection.append(pair[1])
            continue
        kept.append(pair)
    named = {token.strip().lower() for value in connection for token in value.split(b",")} - {b""}
    if not named:  # the usual case
        return kept
    return [pair for pair in kept if pair[0] not in named]


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    seconds: float


# Called once per request: (response, None) or (None, the error).
Done = Callable[["Response | None", "BaseException | None"], None]


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.on_done: Callable[[BaseException | None], None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0
        self.keep_alive = False
        self.closed = False
        self.head_only = False

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(UpstreamProtocolError(f"bad HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        framed = any(
            k.lower() in (b"content-length", b"transfer-encoding") for k, _ in self.headers
        )
        if self.status and not framed and exc is None:
            self.keep_alive = False  # a body delimited by the end of the connection
            self._finish(None)
        self._finish(UpstreamConnectionError(f"connection closed before the response: {exc}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.head_only:  # no body follows a HEAD response whatever its length says
            self.keep_alive = False
            self._finish(None)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # interim response: the real one follows
            self.headers, self.body = [], []
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._finish(None)

    def _finish(self, exc: BaseException | None) -> None:
        on_done = self.on_done
        if on_done is None:  # nothing in flight (or already answered)
            return
        self.on_done = None
        if self.timer is not None:  # None if the write itself failed at once
            self.timer.cancel()
        on_done(exc)

    def _expire(self) -> None:
        self._finish(TimeoutError())

    def exchange(
        self,
        request: bytes,
        head_only: bool,
        deadline: float,
        on_done: Callable[[BaseException | None], None],
    ) -> None:
        """Write `request`; `on_done(None)` once the whole response is read, or
        `on_done(error)`; TimeoutError at `deadline` (loop time). A plain timer:
        asyncio.timeout costs several times more per request."""
        assert self.transport is not None
        self.headers, self.body, self.status = [], [], 0
        self.head_only = head_only
        self.on_done = on_done
        self.timer = None
        self.transport.write(request)
        self.timer = self.loop.call_at(deadline, self._expire)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Exchange:
    """One request to one endpoint: tries idle connections (one that turns out
    closed is replaced transparently), else connects; then reports to `done`."""

    __slots__ = (
        "conn",
        "deadline",
        "done",
        "head_only",
        "idle",
        "request",
        "started",
        "upstream",
        "url",
    )

    def __init__(
        self,
        upstream: Upstream,
        url: str,
        request: bytes,
        head_only: bool,
        deadline: float,
        done: Done,
        idle: list[_Connection],
    ) -> None:
        self.upstream = upstream
        self.url = url
        self.request = request
        self.head_only = head_only
        self.deadline = deadline
        self.done = done
        self.idle = idle
        self.started = time.perf_counter()
        self.conn: _Connection | None = None

    def start(self) -> None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                self.conn = conn
                conn.exchange(self.request, self.head_only, self.deadline, self._reused_done)
                return
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout_at(self.deadline):
                conn = await self.upstream._connect(self.url)
        except (TimeoutError, UpstreamConnectionError, UpstreamProtocolError) as exc:
            self.done(None, exc)
            return
        self.conn = conn
        conn.exchange(self.request, self.head_only, self.deadline, self._finished)

    def _reused_done(self, exc: BaseException | None) -> None:
        if isinstance(exc, UpstreamConnectionError):
            self.start()  # the server closed an idle connection: try the next or a new one
        else:
            self._finished(exc)

    def _finished(self, exc: BaseException | None) -> None:
        conn = self.conn
        if exc is not None:
            conn.close()  # the response may be half read: never reuse it
            self.done(None, exc)
            return
        elapsed = time.perf_counter() - self.started
        chunks = conn.body
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        response = Response(conn.status, conn.headers, body, elapsed)
        kept = self.upstream._idle.get(self.url) is self.idle  # else retain() dropped it
        if kept and conn.keep_alive and not conn.closed and len(self.idle) < MAX_IDLE_PER_ENDPOINT:
            self.idle.append(conn)
        else:
            conn.close()
        self.done(response, None)


class Upstream:
    """Connection pools keyed by base URL, shared by every track."""

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[str, list[_Connection]] = {}
        self._targets: dict[str, tuple[str, int, bytes]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the one that first sends

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def retain(self, base_urls: set[str]) -> None:
        """Close idle connections to endpoints no track has any more (pod churn)."""
        for url in [u for u in self._idle if u not in base_urls]:
            for conn in self._idle.pop(url):
                conn.close()
            self._targets.pop(url, None)

    def _target(self, base_url: str) -> tuple[str, int, bytes]:
        target = self._targets.get(base_url)
        if target is None:
            parts = urlsplit(base_url)
            if parts.scheme != "http" or not parts.hostname:
                raise UpstreamProtocolError(f"only http:// endpoints are supported: {base_url}")
            port = parts.port or 80
            target = (parts.hostname, port, parts.netloc.encode("idna"))
            self._targets[base_url] = target
        return target

    async def _connect(self, base_url: str) -> _Connection:
        host, port, _ = self._target(base_url)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(_Connection, host, port)
        except TimeoutError:
            raise UpstreamConnectionError(f"connect to {host}:{port} timed out") from None
        except OSError as exc:
            raise UpstreamConnectionError(f"connect to {host}:{port}: {exc}") from None
        return conn

    def send(
        self,
        base_url: str,
        method: str,
        path_qs: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        done: Done,
        total_timeout: float | None = None,
    ) -> None:
        """Send one request; `done(response, None)` gets the whole response, or
        `done(None, error)` with UpstreamConnectionError (retryable elsewhere),
        UpstreamProtocolError or TimeoutError. `done` may run before this
        returns (an endpoint URL that is not http://)."""
        try:
            netloc = self._target(base_url)[2]
        except UpstreamProtocolError as exc:
            done(None, exc)
            return
        head = [f"{method} {path_qs} HTTP/1.1\r\n".encode("latin-1"), b"host: ", netloc, b"\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            head += (b"content-length: ", str(len(body)).encode(), b"\r\n")
        head += (b"\r\n", body)
        idle = self._idle.get(base_url)
        if idle is None:
            idle = self._idle[base_url] = []
        timeout = total_timeout or self.read_timeout
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        _Exchange(
            self, base_url, b"".join(head), method == "HEAD", loop.time() + timeout, done, idle
        ).start()

    async def call(
        self,
        base_url: str,
        method: str,
        path_qs: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        total_timeout: float | None = None,
    ) -> Response:
        """`send` for async callers: the response, or raises its error."""
        future = asyncio.get_running_loop().create_future()

        def done(response: Response | None, exc: BaseException | None) -> None:
            if future.done():  # the caller was cancelled; the exchange still completed
                return
            if exc is None:
                future.set_result(response)
            else:
                future.set_exception(exc)

        self.send(base_url, method, path_qs, headers, body, done, total_timeout)
        return await future
