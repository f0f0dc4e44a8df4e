"""The router's upstream client: aiohttp, one session (and pool) per endpoint.

Why aiohttp: it was the fastest maintained client under the router benchmark
(benchmarks/README.md, Router; httpx/httpcore were several times slower per
request). Three of its defaults are wrong for a proxy and are switched off
here: cookies (a backend's Set-Cookie would reach other users), the replay of
an idempotent request whose pooled connection failed (the backend may have
read it), and the reuse of a pooled connection that received bytes nobody
asked for (they would be read as the next exchange's answer: `_Handler`).

Retry policy lives in proxy.py; this module only says whether a failure
provably happened before the request left (`NotSent`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp.client_proto import ResponseHandler
from yarl import URL

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
READ_CHUNK = 64 * 1024
# aiohttp adds these unless told not to; a proxy forwards what the client sent
SKIP_AUTO_HEADERS = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


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


class _Handler(ResponseHandler):
    """aiohttp's connection protocol, never reused once it holds bytes that no
    request asked for (a stray answer parsed while idle, raw bytes, a body
    still open): the pool asks `is_connected` before handing it out."""

    def is_connected(self) -> bool:
        return super().is_connected() and not self.should_close


@dataclass(slots=True)
class Answer:
    """A response head; `chunks` yields its body (the caller must `close`)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    response: aiohttp.ClientResponse
    started: float

    def chunks(self) -> AsyncIterator[bytes]:
        return self.response.content.iter_chunked(READ_CHUNK)

    def at_end(self) -> bool:
        """The body has been read to its end (nothing buffered, none to come)."""
        return self.response.content.at_eof()

    async def close(self) -> None:
        self.response.release()


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
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._closing: dict[asyncio.Task, aiohttp.ClientSession] = {}

    def _session(self, base_url: str) -> aiohttp.ClientSession:
        session = self._sessions.get(base_url)
        if session is None:
            if not base_url.startswith("http://"):
                raise UpstreamError(f"only http:// endpoints are supported: {base_url}")
            connector = aiohttp.TCPConnector(
                limit=0, keepalive_timeout=IDLE_SECONDS, use_dns_cache=False
            )
            # the documented-private protocol factory is the only way to give
            # the pool a protocol that refuses reuse after stray bytes
            connector._factory = functools.partial(  # type: ignore[assignment]
                _Handler, loop=asyncio.get_running_loop()
            )
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=SKIP_AUTO_HEADERS,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.connect_timeout, sock_read=self.timeout
                ),
            )
            session._retry_connection = False  # as aiohttp's own test client does
            self._sessions[base_url] = session
        return session

    def retain(self, base_urls: set[str]) -> None:
        """Close the pools of endpoints no track has any more (pod churn); an
        exchange in flight on one keeps its connection until it ends (or the
        upstream timeout passes)."""
        for url in [u for u in self._sessions if u not in base_urls]:
            session = self._sessions.pop(url)
            task = asyncio.get_running_loop().create_task(self._close_later(session))
            self._closing[task] = session
            task.add_done_callback(self._closing.pop)

    async def _close_later(self, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(self.timeout)
        await session.close()

    async def close(self) -> None:
        for task, session in list(self._closing.items()):
            task.cancel()
            await session.close()
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

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
        session = self._session(base_url)
        out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        if length is not None and (length or method not in ("GET", "HEAD", "DELETE", "OPTIONS")):
            out.append(("content-length", str(length)))
        url = URL(base_url + target.decode("latin-1"), encoded=True)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout or self.timeout):
                response = await session.request(
                    method,
                    url,
                    headers=out,
                    data=body if length is None or length else None,
                    allow_redirects=False,
                    compress=None,
                    chunked=True if length is None else None,
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotSent(f"connect to {base_url}: {exc}") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"{base_url} timed out") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{base_url}: {exc or type(exc).__name__}") from None
        raw = [(k, v) for k, v in response.raw_headers]
        return Answer(response.status, raw, response, started)

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
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{base_url}: {exc or type(exc).__name__}") from None
        seconds = time.perf_counter() - answer.started
        return Buffered(answer.status, answer.headers, b"".join(parts), seconds)
