"""The router's upstream client: httpcore connection pools, one per endpoint.

Why httpcore and not aiohttp (faster per request): aiohttp hands bytes that an
idle pooled connection received to the parser of the next response on it, so
a backend's stray bytes reach another client's exchange; httpcore drops an
idle connection whose socket is readable. Per-endpoint pools let a departed
endpoint's connections be closed (`retain`).

Retry policy lives in proxy.py; this module only says whether a failure
provably happened before the request reached the endpoint (`NotSent`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore

log = logging.getLogger(__name__)

# RFC 9110 section 7.6.1 connection-specific fields, plus the framing headers
# each hop recomputes (and Expect: the router's server has answered it).
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
# Idle upstream connections are dropped before the predictor's own keep-alive
# (uvicorn: 5 s) would close them under a request.
IDLE_SECONDS = 4.0
MAX_CONNECTIONS_PER_ENDPOINT = 1024
MAX_IDLE_PER_ENDPOINT = 256
READ_CHUNK = 64 * 1024


class UpstreamError(Exception):
    """The exchange failed; `status` is what the router answers (502 or 504)."""

    status = 502


class NotSent(UpstreamError):
    """No connection could be opened: the endpoint never saw the request, so it
    may be retried elsewhere."""


class UpstreamTimeout(UpstreamError):
    status = 504


class TooLarge(UpstreamError):
    """An answer over the caller's byte cap (shadow answers)."""


def forwardable(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop headers and those the Connection header names (names
    must be lower-case, as the server gives them)."""
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
class Answer:
    """A response head; `chunks` yields its body (the caller must `close`)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    response: httpcore.Response
    started: float

    def chunks(self) -> AsyncIterator[bytes]:
        return self.response.aiter_stream()  # type: ignore[return-value]

    async def close(self) -> None:
        await self.response.aclose()


@dataclass(slots=True)
class Buffered:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    seconds: float


class Upstream:
    """Connection pools keyed by endpoint base URL."""

    def __init__(self, connect_timeout: float, timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._pools: dict[str, tuple[httpcore.AsyncConnectionPool, bytes, bytes, int]] = {}
        self._closing: set[asyncio.Task] = set()

    def _pool(self, base_url: str) -> tuple[httpcore.AsyncConnectionPool, bytes, bytes, int]:
        entry = self._pools.get(base_url)
        if entry is None:
            parts = urlsplit(base_url)
            if parts.scheme != "http" or not parts.hostname:
                raise UpstreamError(f"only http:// endpoints are supported: {base_url}")
            pool = httpcore.AsyncConnectionPool(
                max_connections=MAX_CONNECTIONS_PER_ENDPOINT,
                max_keepalive_connections=MAX_IDLE_PER_ENDPOINT,
                keepalive_expiry=IDLE_SECONDS,
            )
            host = parts.hostname.encode("idna")
            entry = (pool, host, parts.netloc.encode("idna"), parts.port or 80)
            self._pools[base_url] = entry
        return entry

    def retain(self, base_urls: set[str]) -> None:
        """Close the pools of endpoints no track has any more (pod churn); an
        exchange in flight on one keeps its connection until it ends."""
        for url in [u for u in self._pools if u not in base_urls]:
            pool = self._pools.pop(url)[0]
            task = asyncio.get_running_loop().create_task(self._close_later(pool))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _close_later(self, pool: httpcore.AsyncConnectionPool) -> None:
        for conn in pool.connections:
            if conn.is_idle():
                await conn.aclose()
        await asyncio.sleep(self.timeout)
        await pool.aclose()

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        for pool, *_ in self._pools.values():
            await pool.aclose()
        self._pools.clear()

    async def open(
        self,
        base_url: str,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes],
        length: int | None,
        timeout: float | None = None,
    ) -> Answer:
        """Send the request and return once the response head is read.

        `body` is bytes, or an async iterable read only after the connection
        is open (so a NotSent request can be sent again with it); `length` is
        its declared size (None: sent chunked). Raises NotSent, UpstreamTimeout
        or UpstreamError."""
        pool, host, netloc, port = self._pool(base_url)
        out = [(b"host", netloc), *headers]
        if length is not None:
            if length or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                out.append((b"content-length", str(length).encode()))
        else:
            out.append((b"transfer-encoding", b"chunked"))
        timeout = timeout or self.timeout
        request = httpcore.Request(
            method.encode(),
            httpcore.URL(scheme=b"http", host=host, port=port, target=target),
            headers=out,
            content=body,
            extensions={
                "timeout": {
                    "connect": self.connect_timeout,
                    "read": timeout,
                    "write": timeout,
                    "pool": timeout,
                }
            },
        )
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                response = await pool.handle_async_request(request)
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            raise NotSent(f"connect to {base_url}: {exc or type(exc).__name__}") from None
        except (TimeoutError, httpcore.TimeoutException):
            raise UpstreamTimeout(f"{base_url} timed out") from None
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise UpstreamError(f"{base_url}: {exc or type(exc).__name__}") from None
        return Answer(response.status, response.headers, response, started)

    async def call(
        self,
        base_url: str,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout: float,
        max_bytes: int,
    ) -> Buffered:
        """The whole exchange within `timeout`, the answer read up to `max_bytes`
        (TooLarge beyond): for the shadow, whose answers are compared."""
        try:
            async with asyncio.timeout(timeout):
                answer = await self.open(base_url, method, target, headers, body, len(body))
                try:
                    parts, size = [], 0
                    async for chunk in answer.chunks():
                        size += len(chunk)
                        if size > max_bytes:
                            raise TooLarge(f"{base_url}: answer over {max_bytes} bytes")
                        parts.append(chunk)
                finally:
                    await answer.close()
        except TimeoutError:
            raise UpstreamTimeout(f"{base_url} timed out") from None
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise UpstreamError(f"{base_url}: {exc or type(exc).__name__}") from None
        seconds = time.perf_counter() - answer.started
        return Buffered(answer.status, answer.headers, b"".join(parts), seconds)
