"""The router's HTTP server: uvicorn (httptools parser, uvloop) with the limits
a proxy in front of every prediction needs and uvicorn leaves out.

`RouterProtocol` is uvicorn's httptools protocol plus:
- a deadline on the request head (`head_timeout`, 408): uvicorn only times
  idle keep-alive connections, so a head sent a byte at a time held its
  connection for ever;
- a bound on the head's bytes (`max_head_bytes`, 431) and a body whose
  declared length is over `max_body_bytes` refused before it is read (413);
- JSON errors naming the problem (uvicorn answers 400 text);
- a lingering close after such a refusal: the rest of the input is read and
  discarded for up to LINGER_SECONDS after the answer and a FIN, since a close
  with unread input sends a reset that can destroy the answer at the client.

`serve` runs the server on the caller's loop and drains on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modeldeploy_router import proxy
from modeldeploy_router.settings import Settings

log = logging.getLogger("modeldeploy_router")

LINGER_SECONDS = 2.0
REASONS = {400: b"Bad Request", 408: b"Request Timeout", 413: b"Content Too Large",
           431: b"Request Header Fields Too Large"}  # fmt: skip


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a refused request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Coalescing:
    """A transport whose writes of one event-loop turn leave as one: uvicorn
    writes an answer's head and its body separately, two system calls and
    two TCP segments per answer otherwise."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0
        self.is_closing = transport.is_closing
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.get_extra_info = transport.get_extra_info

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        self._size += len(data)

    def flush(self) -> None:
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending, self._size = [], 0
            if not self._transport.is_closing():
                self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending, self._size = [], 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@dataclass(frozen=True)
class Limits:
    max_head_bytes: int
    max_body_bytes: int
    head_timeout: float


class RouterProtocol(HttpToolsProtocol):
    coalescing: _Coalescing  # the transport uvicorn writes to (connection_made)

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.in_head = True  # bytes of a request head are awaited or arriving
        self.head_bytes = 0  # exact count from the parser's callbacks
        self.head_raw = 0  # raw bytes read while a head is incomplete
        self.read_body = 0  # body bytes parsed in the current read
        self.head_timer: asyncio.TimerHandle | None = None
        self.begun = False  # the first byte of the awaited head has arrived
        self.lingering = False

    # -- connection -----------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.coalescing = _Coalescing(transport, self.loop)
        super().connection_made(self.coalescing)  # type: ignore[arg-type]
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self.head_timer = self.loop.call_later(self.limits.head_timeout, self._head_expired)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_expired(self) -> None:
        self.head_timer = None
        if self.transport.is_closing() or self.lingering:
            return
        if self.begun:
            seconds = self.limits.head_timeout
            self.refuse(408, f"request head not complete within {seconds:g} s")
        else:
            self.transport.close()  # nothing started: an idle connection

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # discarded until the close
        self._unset_keepalive_if_required()
        headers = self.headers
        self.read_body = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An Upgrade (e.g. h2c, websocket) is not taken: the request is
            # answered over HTTP/1.1 and the connection closed after it.
            if self.cycle is not None:
                self.cycle.keep_alive = False
            self.lingering = True
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self.refuse(cause.status, str(cause))
            elif isinstance(cause, httptools.HttpParserInvalidURLError):
                target = self.url[:200].decode("latin-1")
                self.refuse(400, f"malformed HTTP request: invalid target {target!r}")
            else:
                log.error("request parsing failed", exc_info=cause)
                self.refuse(400, "malformed HTTP request")
        except httptools.HttpParserError as exc:
            self.refuse(400, f"malformed HTTP request: {exc}")
        else:
            # The parser keeps an unfinished header line to itself, so the
            # callbacks' count misses a line that never ends: bound the raw
            # bytes read while a head is incomplete too (less the body bytes
            # of an earlier request in the same read; twice the limit leaves
            # room for what else that read held and for line overhead).
            if self.in_head:
                same = self.headers is headers
                self.head_raw += len(data) if same else len(data) - self.read_body
                if self.head_raw > 2 * self.limits.max_head_bytes:
                    self.refuse(431, self._head_message())

    def _head_message(self) -> str:
        return f"request line and headers exceed {self.limits.max_head_bytes} bytes"

    # -- parser callbacks ----------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = self.begun = True
        self.head_bytes = self.head_raw = 0
        if self.head_timer is None:  # a pipelined head: it gets its own deadline
            self._arm_head_timer()

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.limits.max_head_bytes:
            raise _Refused(431, self._head_message())

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_body(self, body: bytes) -> None:
        self.read_body += len(body)
        super().on_body(body)

    def on_headers_complete(self) -> None:
        self.in_head = self.begun = False
        self._cancel_head_timer()
        limit = self.limits.max_body_bytes
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                # answered now instead of reading a body that is refused anyway
                raise _Refused(413, f"request body exceeds {limit} bytes")
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # The answer leaves now rather than at the end of the loop turn: what
        # the request's task still does (upstream release, metrics) follows it.
        self.coalescing.flush()
        if self.lingering:
            return
        super().on_response_complete()
        if not self.pipeline and not self.transport.is_closing():
            self._arm_head_timer()  # the next head, if any, is due within the deadline

    # -- refusals --------------------------------------------------------------
    def refuse(self, status: int, message: str) -> None:
        """Answer a request that is not handled, then close: after the request
        in flight when there is one (its answer comes first)."""
        self.lingering = True
        self._cancel_head_timer()
        self.pipeline.clear()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            return
        body = orjson.dumps({"error": message})
        head = b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Error"))
        rid = next((v for k, v in self.headers or () if k == b"x-request-id"), None)
        rid = rid or os.urandom(16).hex().encode()
        headers = [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
        ]
        if rid is not None and b"\r" not in rid and b"\n" not in rid:
            headers.append(b"x-request-id: " + rid + b"\r\n")
        self.transport.write(b"".join([head, *headers, b"\r\n", body]))
        self._linger()

    def _linger(self) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        with contextlib.suppress(OSError, RuntimeError, NotImplementedError):
            transport.write_eof()  # FIN after the answer; input still read (and dropped)
        transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    def send_400_response(self, msg: str) -> None:  # uvicorn's own 400s
        self.refuse(400, f"malformed HTTP request: {msg}")


class _QuietAborts(logging.Filter):
    """uvicorn logs an app exception with its traceback; an answer the upstream
    broke off (proxy.Aborted) has been logged by the proxy already, and a
    request cancelled at the end of a drain by the drain."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, proxy.Aborted | asyncio.CancelledError)


def make_config(app: proxy.Router, settings: Settings) -> uvicorn.Config:
    limits = Limits(settings.max_head_bytes, settings.max_body_bytes, settings.head_timeout)
    config = uvicorn.Config(
        app,
        http=functools.partial(RouterProtocol, limits=limits),  # type: ignore[arg-type]
        ws="none",
        lifespan="off",
        loop="none",
        interface="asgi3",
        access_log=False,
        # the router never reads the client's address: no X-Forwarded-* rewrite
        # of the scope (the headers themselves reach the predictor unchanged)
        proxy_headers=False,
        log_config=None,
        server_header=False,
        timeout_keep_alive=int(max(1, round(settings.keep_alive))),
    )
    config.timeout_keep_alive = settings.keep_alive  # type: ignore[assignment]
    config.load()
    logging.getLogger("uvicorn.error").addFilter(_QuietAborts())
    return config


class Server:
    """uvicorn's Server on a socket we bind, started and drained by us (so that
    --shutdown-delay and the router's own stop come in the right order)."""

    def __init__(self, router: proxy.Router, settings: Settings) -> None:
        self.router = router
        self.settings = settings
        self.config = make_config(router, settings)
        self.uvicorn = uvicorn.Server(self.config)
        self.uvicorn.lifespan = self.config.lifespan_class(self.config)

    async def listen(self, host: str, port: int) -> None:
        """Bind and serve; OSError when the port cannot be bound."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(False)
        await self.uvicorn.startup(sockets=[sock])

    async def drain(self, grace: float, delay: float = 0.0) -> None:
        """`delay`: keep accepting that long first, each answer closing its
        connection (a terminating pod's endpoint takes a moment to leave every
        node's Service rules); then stop accepting, let requests in flight
        finish for up to `grace` seconds, close what is left."""
        self.router.draining = True
        if delay > 0:
            await asyncio.sleep(delay)
        state = self.uvicorn.server_state
        for listener in self.uvicorn.servers:
            listener.close()
        for conn in list(state.connections):
            conn.shutdown()  # idle: closed now; busy: closed after its answer
        try:
            async with asyncio.timeout(grace):
                while state.tasks or state.connections:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            log.warning("%d requests still in flight after %gs; closing", len(state.tasks), grace)
        for conn in list(state.connections):
            conn.transport.close()
        for task in list(state.tasks):
            task.cancel("drain: --drain-seconds passed")
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=1.0)


async def serve(router: proxy.Router, host: str, port: int) -> int:
    """Start the router, serve until SIGTERM or SIGINT, then drain. Exit status 0
    after a clean drain, 1 when the port cannot be bound, 3 when start-up fails."""
    settings = router.settings
    try:
        await router.start()
    except Exception:
        log.exception("router failed to start")
        await router.stop()
        return 3
    server = Server(router, settings)
    try:
        await server.listen(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        await router.stop()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on http://%s:%d", host, port)
    await stop.wait()
    if settings.shutdown_delay > 0:
        delay = settings.shutdown_delay
        log.info("shutting down: still accepting for %gs (--shutdown-delay)", delay)
    log.info("shutting down: finishing requests in flight (at most %gs)", settings.drain_seconds)
    await server.drain(settings.drain_seconds, settings.shutdown_delay)
    await router.stop()
    log.info("stopped")
    return 0
