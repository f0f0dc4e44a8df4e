"""The router's HTTP/1.1 server: an asyncio Protocol on httptools.

Why not uvicorn: at concurrency 1 the router's whole cost is its hop, and
under uvicorn most of it was the ASGI request cycle (a Task, a scope dict and
several message dicts and awaits per request). The router buffers bodies
anyway (to retry and to compare the shadow's answer), so it needs none of
ASGI's streaming. This server parses with httptools, buffers the request,
hands it to a callback handler (no Task per request: the router answers from
its upstream's data_received) and writes the reply in one call.

What it keeps from a production HTTP server: keep-alive with an idle timeout,
pipelined requests answered in order, chunked request bodies, a body limit
answered with 413 before the body is read, a header-size limit (431),
malformed requests answered with a 400 JSON error, `Expect: 100-continue`,
no reading while answers wait unread (write flow control), and a graceful
drain: stop accepting, finish the requests in flight, close idle connections.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools
import orjson

log = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 5.0
MAX_HEADER_BYTES = 64 * 1024
MAX_PIPELINED = 16  # requests queued behind the one in flight before reading pauses
LINGER_SECONDS = 2.0  # how long unread input is discarded after an early reply
HEAD_TOO_LARGE = f"request line and headers exceed {MAX_HEADER_BYTES} bytes"


@dataclass(slots=True)
class Request:
    method: str
    target: bytes  # path and query exactly as received
    path: bytes  # without the query
    headers: list[tuple[bytes, bytes]]  # names lower-cased
    body: bytes = b""
    body_too_large: bool = False  # the body was not read: answer 413


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, doc: dict, headers: list | None = None) -> Reply:
        return cls(
            status, [(b"content-type", b"application/json"), *(headers or [])], orjson.dumps(doc)
        )


# handler(request, respond): calls respond(reply) exactly once, now or later.
Handler = Callable[[Request, Callable[[Reply], None]], None]

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in http.HTTPStatus}


class _Clock:
    """The Date header, formatted once a second rather than per response."""

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = email.utils.formatdate(now, usegmt=True).encode()
        return self._value


def encode_reply(reply: Reply, head_only: bool, close: bool, date: bytes) -> bytes:
    status = reply.status
    line = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode()
    parts = [line]
    has_length = False
    for name, value in reply.headers:
        parts += (name, b": ", value, b"\r\n")
        has_length = has_length or name == b"content-length"
    if not has_length:
        parts.append(b"content-length: %d\r\n" % len(reply.body))
    parts += (b"date: ", date, b"\r\n")
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if not head_only:
        parts.append(reply.body)
    return b"".join(parts)


class _HeadTooLarge(Exception):
    pass


class _Discard(Exception):
    """Stops the parser: what follows a refused request is not handled."""


class HttpConnection(asyncio.Protocol):
    """One client connection. Requests are handled one at a time, in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[tuple[Request, bool]] = deque()
        self.busy = False  # a request was handed to the handler and is not answered yet
        self.starting = False  # inside _run (answers given now must not recurse)
        self.keep_alive_now = True  # of the request in flight
        self.head_only_now = False
        self.closing = False  # close once the request in flight is answered
        self.lingering = False  # an early reply was sent: discard the rest
        self.last_active = self.loop.time()  # for the server's idle sweep
        self.reading = True
        self.write_paused = False  # the client is not reading its answers
        self._new_message()

    def _new_message(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.head_seen = 0  # bytes received inside this head; -1 once it is complete
        self.body: list[bytes] = []
        self.body_size = 0
        self.too_large = False

    # -- asyncio.Protocol ---------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.pending.clear()  # the client is gone: nobody reads these answers
        self.closing = True
        if not self.busy:
            self.server.connection_done()

    def pause_writing(self) -> None:
        """Answers pile up unread: take no more requests until the client reads
        (else a few bytes of pipelined requests buffer any amount of answers)."""
        self.write_paused = True
        if self.reading:
            self.transport.pause_reading()
            self.reading = False

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.closing:
            return
        if not self.reading and len(self.pending) <= MAX_PIPELINED // 2:
            self.transport.resume_reading()
            self.reading = True
        if not self.busy and self.pending:
            self._run(*self._next_pending())

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        self.last_active = self.loop.time()
        headers, in_head = self.headers, self.head_seen >= 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An Upgrade (e.g. h2c) is not taken: the request is answered over
            # HTTP/1.1 with `connection: close` (on_message_complete), as the
            # parser stops here.
            self.closing = True
            if not self.busy and self.transport is not None:
                self.transport.close()  # already answered
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadTooLarge):
                self._refuse(431, HEAD_TOO_LARGE)
            elif isinstance(cause, httptools.HttpParserInvalidURLError):  # e.g. CONNECT host:443
                target = self.url[:200].decode("latin-1")
                self._refuse(400, f"malformed HTTP request: invalid target {target!r}")
            elif not isinstance(cause, _Discard):  # a bug in a callback: do not hang the client
                log.error("request parsing failed", exc_info=cause)
                self._refuse(500, "internal router error")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")
        else:
            # The parser buffers a header line until it ends, so the exact count
            # (on_url, on_header) misses a line that never ends: bound the raw
            # bytes of an unfinished head too. Only reads wholly inside one head
            # count (a pipelined body never does); twice the limit leaves room
            # for the line overhead the exact count leaves out.
            if in_head and self.headers is headers and self.head_seen >= 0:
                self.head_seen += len(data)
                if self.head_seen > 2 * MAX_HEADER_BYTES:
                    self._refuse(431, HEAD_TOO_LARGE)

    # -- httptools callbacks (per-message state is reset after each message) --
    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise _HeadTooLarge  # httptools re-raises it from feed_data

    def on_headers_complete(self) -> None:
        if self.lingering:  # a request refused earlier in this read: stop here
            raise _Discard
        self.head_seen = -1
        limit = self.server.max_body_bytes
        expects_continue = False
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                self.too_large = True
            elif name == b"expect" and value.lower() == b"100-continue":
                expects_continue = True
        if self.too_large:  # answer now instead of reading a body that is refused anyway
            self._refuse_body()
        elif expects_continue and not self.busy and not self.pending:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.too_large:
            return
        self.body_size += len(body)
        if self.body_size > self.server.max_body_bytes:
            self.too_large = True
            self.body = []
            self._refuse_body()
            return
        self.body.append(body)

    def _refuse_body(self) -> None:
        """Hand over the request marked too large (the handler answers 413) and
        discard the rest of the input."""
        self.lingering = True  # set first: the answer may be written right away
        self._dispatch(self._request(), keep_alive=False)

    def on_message_complete(self) -> None:
        if not self.too_large:
            request = self._request()
            body = self.body
            request.body = body[0] if len(body) == 1 else b"".join(body)
            parser = self.parser
            self._dispatch(request, parser.should_keep_alive() and not parser.should_upgrade())
        self._new_message()

    # -- requests -------------------------------------------------------------
    def _request(self) -> Request:
        url = self.url
        if not url.startswith(b"/") and url != b"*":  # absolute form (a client set to use a proxy)
            parsed = httptools.parse_url(url)  # HttpParserInvalidURLError: 400 (data_received)
            url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        path = url.split(b"?", 1)[0]
        method = self.parser.get_method().decode("ascii")
        return Request(method, url, path, self.headers, body_too_large=self.too_large)

    def _dispatch(self, request: Request, keep_alive: bool) -> None:
        if self.busy or self.write_paused:
            self.pending.append((request, keep_alive))
            if len(self.pending) >= MAX_PIPELINED and self.reading:
                self.transport.pause_reading()
                self.reading = False
            return
        self._run(request, keep_alive)

    def _next_pending(self) -> tuple[Request, bool]:
        if not self.reading and not self.write_paused and len(self.pending) <= MAX_PIPELINED // 2:
            self.transport.resume_reading()
            self.reading = True
        return self.pending.popleft()

    def _run(self, request: Request, keep_alive: bool) -> None:
        """Hand `request` to the handler, then any queued ones it answers at once
        (a loop, not recursion: a pipelined burst of /healthz is answered inline)."""
        self.starting = True
        try:
            while True:
                self.busy = True
                self.keep_alive_now = keep_alive
                self.head_only_now = request.method == "HEAD"
                try:
                    self.server.handler(request, self.respond)
                except Exception:
                    log.exception("handler failed for %s %r", request.method, request.target)
                    rid = [(k, v) for k, v in request.headers if k == b"x-request-id"][:1]
                    self.respond(Reply.json(500, {"error": "internal router error"}, rid))
                if (
                    self.busy
                    or not self.pending
                    or self.write_paused
                    or self.transport.is_closing()
                ):
                    return
                request, keep_alive = self._next_pending()
        finally:
            self.starting = False

    def respond(self, reply: Reply) -> None:
        """The handler's answer to the request in flight (called once per request)."""
        if not self.busy:
            return
        self.busy = False
        # closing/draining: requests already received are still answered first
        close = not self.keep_alive_now or (
            (self.closing or self.server.draining) and not self.pending
        )
        transport = self.transport
        if transport is None or transport.is_closing():  # the client has gone
            self.server.connection_done()
            return
        transport.write(encode_reply(reply, self.head_only_now, close, self.server.clock.date()))
        self.last_active = self.loop.time()
        if close:
            self.closing = True
            if self.lingering:
                self._linger()
            else:
                transport.close()
            self.server.connection_done()
        elif self.pending:
            if not self.starting and not self.write_paused:
                self._run(*self._next_pending())
        elif self.server.draining:
            self.close_if_idle()

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed, then close."""
        self.lingering = True
        self.pending.clear()
        if self.busy:  # the request in flight is answered first, then this connection closes
            self.closing = True
            return
        reply = Reply.json(status, {"error": message})
        self.transport.write(encode_reply(reply, False, True, self.server.clock.date()))
        self._linger()

    def _linger(self) -> None:
        """Close after an early reply without resetting the connection: a close
        with unread input sends RST, which can destroy the reply at the client."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def close_if_idle(self) -> None:
        if not self.busy and self.transport is not None and not self.lingering:
            self.transport.close()


class HttpServer:
    """Listens, tracks connections, drains them on shutdown."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_body_bytes: int,
        keep_alive: float = KEEP_ALIVE_SECONDS,
    ) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keep_alive = keep_alive
        self.clock = _Clock()
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self.loop = asyncio.get_running_loop()
        self._server: asyncio.Server | None = None
        self._quiet: asyncio.Event | None = None

    async def listen(self, host: str, port: int) -> None:
        self._server = await self.loop.create_server(
            lambda: HttpConnection(self), host, port, reuse_address=True, backlog=2048
        )
        self._sweep()

    def _sweep(self) -> None:
        """Close connections idle for longer than the keep-alive time. One timer
        for the server, not one per request: a timer per request is a measurable
        share of the router's per-request cost."""
        if self.draining:
            return
        cutoff = self.loop.time() - self.keep_alive
        for conn in [c for c in self.connections if c.last_active < cutoff]:
            conn.close_if_idle()
        self.loop.call_later(min(1.0, self.keep_alive / 2), self._sweep)

    def connection_done(self) -> None:
        if self._quiet is not None and not any(c.busy for c in self.connections):
            self._quiet.set()

    async def drain(self, grace: float, delay: float = 0.0) -> None:
        """Stop accepting; answer what is in flight (closing each connection
        after its answer); after `grace` seconds close whatever is left.

        `delay`: keep accepting that long first, closing each connection after
        its next answer. In Kubernetes a terminating pod's endpoint takes a
        moment to leave every node's Service rules; new connections that
        still arrive then are answered instead of refused."""
        self.draining = True
        if delay > 0:
            await asyncio.sleep(delay)
        if self._server is not None:
            self._server.close()
        self._quiet = asyncio.Event()
        for conn in list(self.connections):
            conn.close_if_idle()
        self.connection_done()
        try:
            async with asyncio.timeout(grace):
                await self._quiet.wait()
        except TimeoutError:
            log.warning(
                "%d requests still in flight after %gs; closing",
                sum(c.busy for c in self.connections),
                grace,
            )
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
