"""Misbehaving backends behind the real router (issue 15): a scripted
raw-socket backend on loopback, a raw client, each case under uvloop and
asyncio, failing on any ERROR logged. Each case failed on the router's own
HTTP stack before it moved to uvicorn + httpcore."""

from __future__ import annotations

import asyncio

import pytest

from tests.router.harness import (
    PREDICT,
    WAIT,
    Backend,
    echo_script,
    get,
    post,
    read_head,
    read_request,
    response,
    serving,
    table,
    until,
)


def test_stray_bytes_on_an_idle_connection_never_reach_another_exchange(run) -> None:
    async def script(backend: Backend, reader, writer) -> None:
        while (req := await read_request(reader)) is not None:
            backend.requests.append(req)
            writer.write(response(200, req[0].target.encode()))
            await writer.drain()
            await asyncio.sleep(0.05)  # idle in the router's pool, then junk on it
            writer.write(response(200, b"someone else's answer"))
            await writer.drain()

    async def main() -> None:
        async with Backend(script) as backend, serving(table(stable=backend.url)) as srv:
            for n in range(4):
                ans = await srv.exchange(get(f"/mine-{n}"))
                assert (ans.status, ans.body) == (200, f"/mine-{n}".encode())
                await until(lambda n=n: len(backend.writers) > n, "stray bytes sent")
                await asyncio.sleep(0.1)

    run(main())


@pytest.mark.parametrize("endpoints", [1, 2])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_request_the_backend_read_is_never_sent_again(run, endpoints: int, method: str) -> None:
    async def script(backend: Backend, reader, writer) -> None:
        req = await read_request(reader)
        if req is not None:
            backend.requests.append(req)
        writer.transport.abort()  # read it, then dropped the connection: a crash

    async def main() -> None:
        async with Backend(script) as one, Backend(script) as two:
            urls = (one.url, two.url)[:endpoints]
            async with serving(table(stable=urls)) as srv:
                data = post("/predict", PREDICT) if method == "POST" else get("/predict")
                ans = await srv.exchange(data)
                assert ans.status == 502, ans
                assert ans.json()["track"] == "stable"
            assert len(one.requests) + len(two.requests) == 1

    run(main(), allow=())


def test_refused_connect_is_retried_once_on_another_endpoint(run, port: int) -> None:
    async def main() -> None:
        async with Backend(echo_script) as backend:
            dead = f"http://127.0.0.1:{port}"
            async with serving(table(stable=(dead, backend.url))) as srv:
                for _ in range(4):
                    assert (await srv.exchange(post("/p", PREDICT))).status == 200
            assert len(backend.requests) == 4

    run(main())


def test_pipelined_requests_with_large_answers_read_late_are_all_answered(run) -> None:
    big = 1024 * 1024

    async def script(backend: Backend, reader, writer) -> None:
        while (req := await read_request(reader)) is not None:
            backend.requests.append(req)
            writer.write(response(200, req[0].target.encode()[-1:] * big))
            await writer.drain()

    async def main() -> None:
        async with Backend(script) as backend, serving(table(stable=backend.url)) as srv:
            client = await srv.connect()
            client.send(get("/a") + get("/b") + get("/c"))
            await asyncio.sleep(1.0)  # reads late
            for name in b"abc":
                ans = await client.answer()
                assert (ans.status, len(ans.body), ans.body[:1]) == (200, big, bytes([name]))
            await client.close()
            assert len(backend.requests) == 3

    run(main())


def test_head_answer_has_one_content_length(run) -> None:
    async def script(backend: Backend, reader, writer) -> None:
        while (head := await read_head(reader)) is not None:
            backend.requests.append((head, b""))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-Kind: head\r\n\r\n")
            await writer.drain()

    async def main() -> None:
        async with Backend(script) as backend, serving(table(stable=backend.url)) as srv:
            client = await srv.connect()
            for _ in range(2):  # and the connection stays usable
                client.send(get("/x", method="HEAD"))
                ans = await client.answer(head_only=True)
                assert ans.status == 200
                assert ans.names.count("content-length") == 1
                assert ans.headers["content-length"] == "1234"
                assert ans.headers["x-kind"] == "head"
            await client.close()

    run(main())


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_length_on_204_and_304(run, status: int) -> None:
    async def script(backend: Backend, reader, writer) -> None:
        while (req := await read_request(reader)) is not None:
            backend.requests.append(req)
            writer.write(f'HTTP/1.1 {status} X\r\nETag: "e"\r\n\r\n'.encode())
            await writer.drain()

    async def main() -> None:
        async with Backend(script) as backend, serving(table(stable=backend.url)) as srv:
            client = await srv.connect()
            for _ in range(2):
                client.send(get("/x"))
                ans = await client.answer()
                assert ans.status == status
                assert "content-length" not in ans.names
                assert "transfer-encoding" not in ans.names
            client.send(get("/y"))  # nothing stray followed the answers
            assert (await client.answer()).status == status
            await client.close()

    run(main())


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x00\x01binary",
    ],
    ids=["101", "101-then-bytes"],
)
def test_101_from_the_backend_is_a_clean_502(run, interim: bytes) -> None:
    async def script(backend: Backend, reader, writer) -> None:
        head = await read_head(reader)
        backend.requests.append((head, b""))
        writer.write(interim)
        await writer.drain()
        await asyncio.sleep(1)

    async def main() -> None:
        async with Backend(script) as backend, serving(table(stable=backend.url)) as srv:
            client = await srv.connect()
            client.send(get("/x"))
            ans = await client.answer()
            assert ans.status == 502
            assert ans.json()["track"] == "stable"
            client.send(get("/healthz"))  # the client's connection goes on
            assert (await client.answer()).status == 200
            await client.close()

    run(main())  # and nothing logged at ERROR (a "Fatal error on transport" before)


def test_100_continue_from_the_backend_is_skipped(run) -> None:
    async def script(backend: Backend, reader, writer) -> None:
        req = await read_request(reader)
        backend.requests.append(req)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + response(200, b"final"))
        await writer.drain()
        await read_request(reader)

    async def main() -> None:
        async with Backend(script) as backend, serving(table(stable=backend.url)) as srv:
            ans = await srv.exchange(post("/x", b"{}"))
            assert (ans.status, ans.body) == (200, b"final")

    run(main())


def test_large_answer_is_streamed_not_buffered(run) -> None:
    """A client that does not read a 128 MiB answer: the router takes only
    flow-control buffers of it from the backend (and the kernel's socket
    buffers, up to some 20 MiB on loopback), the rest waits there."""
    size = 128 * 1024 * 1024
    sent: list[int] = []

    async def script(backend: Backend, reader, writer) -> None:
        await read_head(reader)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"z" * (1024 * 1024)
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            sent.append(len(chunk))
            await writer.drain()

    async def main() -> None:
        async with Backend(script) as backend, serving(table(stable=backend.url)) as srv:
            client = await srv.connect()
            client.send(get("/big"))
            await until(lambda: len(sent) > 4, "answer started")
            await asyncio.sleep(0.5)
            taken = sum(sent)
            assert taken < 48 * 1024 * 1024, taken  # kernel and loop buffers, not 128 MiB
            got = 0
            head = await client.reader.readuntil(b"\r\n\r\n")
            assert b"content-length: %d" % size in head
            while got < size:
                got += len(await asyncio.wait_for(client.reader.read(1 << 20), WAIT))
            assert got == size
            await client.close()

    run(main())


def test_request_body_is_streamed_and_bounded_per_connection(run) -> None:
    """A backend that reads nothing of a 32 MiB body: the router stops
    reading it from the client after flow-control buffers."""
    size = 32 * 1024 * 1024

    async def script(backend: Backend, reader, writer) -> None:
        head = await read_head(reader)
        backend.requests.append((head, b""))
        await asyncio.sleep(WAIT)

    async def main() -> None:
        async with (
            Backend(script) as backend,
            serving(table(stable=backend.url), max_body_bytes=size) as srv,
        ):
            client = await srv.connect()
            client.send(get("/up", f"Content-Length: {size}", method="POST"))
            client.send(b"u" * size)
            await until(lambda: backend.requests, "request head forwarded")
            await asyncio.sleep(0.5)
            unsent = client.writer.transport.get_write_buffer_size()
            assert unsent > size - 24 * 1024 * 1024, unsent  # most of it still at the client
            client.writer.transport.abort()

    run(main())


def test_head_sent_slowly_gets_408_at_the_deadline(run) -> None:
    async def main() -> None:
        async with (
            Backend(echo_script) as backend,
            serving(table(stable=backend.url), head_timeout=0.5) as srv,
        ):
            client = await srv.connect()
            loop = asyncio.get_running_loop()
            started = loop.time()
            for byte in get("/slow")[:10]:
                client.send(bytes([byte]))
                await asyncio.sleep(0.1)
                if client.reader.at_eof() or client.reader._buffer:
                    break
            ans = await client.closing(408)
            assert "0.5" in ans.json()["error"]
            assert loop.time() - started < 2
            idle = await srv.connect()  # a connection that sends nothing is closed too
            assert await idle.at_eof()
            assert not backend.requests

    run(main())


def test_shadow_queue_is_bounded_in_bytes(run) -> None:
    body = b'{"instances": [[1, 2]], "pad": "' + b"p" * 300_000 + b'"}'

    async def hang(backend: Backend, reader, writer) -> None:
        await read_head(reader)
        backend.requests.append(None)  # type: ignore[arg-type]
        await asyncio.sleep(WAIT * 2)

    async def main() -> None:
        async with Backend(echo_script) as primary, Backend(hang) as shadow:
            routes = table(stable=primary.url, shadow=shadow.url, mirror=100)
            async with serving(
                routes, max_body_bytes=len(body), mirror_queue_bytes=1024 * 1024,
                mirror_concurrency=1, shadow_timeout=WAIT,
            ) as srv:  # fmt: skip
                for _ in range(6):
                    ans = await srv.exchange(post("/predict", body))
                    assert ans.status == 200
                await until(lambda: shadow.requests, "shadow reached")
                dropped = srv.metric("modeldeploy_router_mirror_total", result="dropped")
                # each copy holds ~600 kB (request + echoed answer): one fits in 1 MiB
                assert dropped == 5

    run(main())


def test_backend_cookies_are_passed_on_not_kept(run) -> None:
    async def script(backend: Backend, reader, writer) -> None:
        while (req := await read_request(reader)) is not None:
            backend.requests.append(req)
            writer.write(response(200, b"ok", "Set-Cookie: session=alice; Path=/"))
            await writer.drain()

    async def main() -> None:
        async with Backend(script) as backend, serving(table(stable=backend.url)) as srv:
            first = await srv.exchange(get("/login"))
            assert first.headers["set-cookie"] == "session=alice; Path=/"  # the client's to keep
            await srv.exchange(get("/other-user"))
            assert "cookie" not in backend.requests[1][0].headers  # never added by the router

    run(main())


def test_answer_broken_off_by_the_backend_is_cut_off_at_the_client(run) -> None:
    async def script(backend: Backend, reader, writer) -> None:
        req = await read_request(reader)
        backend.requests.append(req)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.transport.abort()

    async def main() -> None:
        async with Backend(script) as backend, serving(table(stable=backend.url)) as srv:
            client = await srv.connect()
            client.send(get("/cut"))
            head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), WAIT)
            assert head.startswith(b"HTTP/1.1 200")
            rest = await asyncio.wait_for(client.reader.read(), WAIT)  # then EOF
            assert len(rest) < 1000
            await client.close()
            assert srv.metric("modeldeploy_router_requests_total", code="502") == 1
            assert (await srv.exchange(get("/healthz"))).status == 200

    run(main())  # a warning, nothing at ERROR
