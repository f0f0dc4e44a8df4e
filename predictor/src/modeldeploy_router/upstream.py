"""The pooled HTTP client the router forwards with (aiohttp, keep-alive).

aiohttp was measured faster than httpx for this hop (see benchmarks/README.md)
and it is already the transport of kubernetes_asyncio. Bodies are forwarded
byte for byte: no automatic decompression, no default headers added.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from yarl import URL

# RFC 9110 section 7.6.1 connection-specific fields, plus the framing headers the
# client and the server recompute themselves.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


def forwardable(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers (and those the Connection header names)."""
    pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers]
    named = {
        token.strip().lower()
        for k, v in pairs
        if k == "connection"
        for token in v.split(",")
        if token.strip()
    }
    return [(k, v) for k, v in pairs if k not in HOP_BY_HOP and k not in named]


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    seconds: float


class Upstream:
    """One aiohttp session for every track; created inside the running loop."""

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self.read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0,  # the server side bounds concurrency; never queue inside the client
            keepalive_timeout=30,
            enable_cleanup_closed=False,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type", "Accept"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        base_url: str,
        method: str,
        path_qs: str,
        headers: list[tuple[str, str]],
        body: bytes,
        total_timeout: float | None = None,
    ) -> Response:
        """Send one request and read the whole response.

        Raises aiohttp.ClientConnectionError (retryable on another endpoint) or
        TimeoutError.
        """
        assert self._session is not None, "Upstream.start() not called"
        total = total_timeout or self.read_timeout
        timeout = self._timeouts.get(total)
        if timeout is None:  # one object per distinct timeout, not one per request
            timeout = aiohttp.ClientTimeout(total=total, sock_connect=self.connect_timeout)
            self._timeouts[total] = timeout
        started = time.perf_counter()
        async with self._session.request(
            method,
            URL(base_url + path_qs, encoded=True),
            data=body if body or method not in ("GET", "HEAD") else None,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        ) as resp:
            data = await resp.read()
            return Response(
                status=resp.status,
                headers=list(resp.raw_headers),
                body=data,
                seconds=time.perf_counter() - started,
            )
