"""The upstream client against small raw HTTP servers on loopback sockets,
for the framings and failures a well-behaved test upstream never produces."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from modeldeploy_router.upstream import (
    Upstream,
    UpstreamConnectionError,
    UpstreamProtocolError,
    forwardable,
)


@contextlib.asynccontextmanager
async def raw_server(answer: bytes, close_after: bool = False):
    """Answers every request (read up to the blank line + content-length) with
    `answer`; `close_after` closes the connection silently after each answer."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                seen.append(head + await reader.readexactly(length))
                writer.write(answer)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", seen


async def test_request_bytes_and_keep_alive_reuse() -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\n\r\nok"
    async with raw_server(answer) as (url, seen):
        up = Upstream(1.0, 5.0)
        headers = [(b"content-type", b"application/json"), (b"x-request-id", b"r1")]
        for _ in range(3):
            resp = await up.call(url, "POST", "/v1/models/m:predict?x=1", headers, b"{}")
            assert (resp.status, resp.body) == (200, b"ok")
            assert (b"x-a", b"1") in resp.headers
        await up.close()
    netloc = url.removeprefix("http://").encode()
    assert seen[0] == (
        b"POST /v1/models/m:predict?x=1 HTTP/1.1\r\nhost: " + netloc + b"\r\n"
        b"content-type: application/json\r\nx-request-id: r1\r\ncontent-length: 2\r\n\r\n{}"
    )
    assert len(seen) == 3


async def test_retain_closes_connections_to_removed_endpoints() -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with raw_server(answer) as (url, _), raw_server(answer) as (other, _):
        up = Upstream(1.0, 5.0)
        await up.call(url, "GET", "/", [], b"")
        await up.call(other, "GET", "/", [], b"")
        conn = up._idle[url][0]
        up.retain({other})
        assert conn.closed
        assert url not in up._idle
        assert len(up._idle[other]) == 1
        assert (await up.call(url, "GET", "/", [], b"")).body == b"ok"  # reconnects if needed
        await up.close()


async def test_connection_in_flight_to_a_removed_endpoint_is_closed_after() -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    release = asyncio.Event()
    server_side: list[asyncio.StreamReader] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        server_side.append(reader)
        await release.wait()
        writer.write(answer)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        up = Upstream(1.0, 5.0)
        call = asyncio.create_task(up.call(url, "GET", "/", [], b""))
        while not server_side:
            await asyncio.sleep(0.01)
        up.retain(set())  # the endpoint left every track while its request was in flight
        release.set()
        assert (await call).body == b"ok"
        assert url not in up._idle  # not pooled again
        assert await asyncio.wait_for(server_side[0].read(), 5) == b""  # closed by the client
        await up.close()


async def test_idle_connection_closed_by_server_is_replaced() -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with raw_server(answer, close_after=True) as (url, seen):
        up = Upstream(1.0, 5.0)
        for _ in range(3):
            await asyncio.sleep(0.05)  # let the close reach the client, or not: both work
            assert (await up.call(url, "POST", "/p", [], b"{}")).body == b"ok"
        await up.close()
    assert len(seen) == 3


async def test_chunked_and_connection_delimited_bodies() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with raw_server(chunked) as (url, _):
        up = Upstream(1.0, 5.0)
        assert (await up.call(url, "GET", "/", [], b"")).body == b"abcde"
        await up.close()
    until_close = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it"
    async with raw_server(until_close, close_after=True) as (url, _):
        up = Upstream(1.0, 5.0)
        assert (await up.call(url, "GET", "/", [], b"")).body == b"all of it"
        await up.close()


async def test_garbage_is_a_protocol_error() -> None:
    async with raw_server(b"SSH-2.0-OpenSSH\r\n\r\n") as (url, _):
        up = Upstream(1.0, 5.0)
        with pytest.raises(UpstreamProtocolError, match="bad HTTP response"):
            await up.call(url, "GET", "/", [], b"")
        await up.close()


async def test_refused_and_timeout(port: int) -> None:
    up = Upstream(0.5, 0.3)
    with pytest.raises(UpstreamConnectionError, match="connect to"):
        await up.call(f"http://127.0.0.1:{port}", "GET", "/", [], b"")
    async with raw_server(b"") as (url, _):  # reads the request, never answers
        with pytest.raises(TimeoutError):
            await up.call(url, "POST", "/", [], b"{}")
    await up.close()


def test_forwardable_drops_hop_by_hop_and_connection_named() -> None:
    headers = [
        (b"connection", b"keep-alive, x-secret"),
        (b"x-secret", b"1"),
        (b"transfer-encoding", b"chunked"),
        (b"host", b"router"),
        (b"expect", b"100-continue"),
        (b"content-type", b"application/json"),
        (b"x-request-id", b"abc"),
    ]
    assert forwardable(headers) == [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"abc"),
    ]
