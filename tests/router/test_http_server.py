"""The router's HTTP server as clients see it: keep-alive, pipelining, flow
control, chunked bodies, 100-continue, timeouts, limits (413, 431),
malformed requests (400 JSON), Upgrade, HEAD, absolute-form targets,
x-request-id, failures in the router itself. The real router in-process
(harness.py) before a scripted echo backend, a raw socket client."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from modeldeploy_router import proxy

from tests.router.harness import (
    BIG,
    LIMIT,
    PREDICT,
    WAIT,
    Backend,
    Client,
    Served,
    echo_script,
    get,
    post,
    serving,
    table,
    until,
)


def served(run, case, allow: tuple[str, ...] = (), **settings) -> None:
    """Run case(served, client, backend) with a fresh echo backend and router."""

    async def main() -> None:
        async with (
            Backend(echo_script) as backend,
            serving(table(stable=backend.url), **settings) as srv,
        ):
            client = await srv.connect()
            try:
                await case(srv, client, backend)
            finally:
                await client.close()

    run(main(), allow)


def targets(backend: Backend) -> list[str]:
    return [head.target for head, _ in backend.requests]


async def assert_serving(srv: Served) -> None:
    assert (await srv.exchange(get("/ok"))).status == 200


# -- keep-alive ---------------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(run) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        for i in range(3):
            client.send(post(f"/echo/{i}", b"x" * i))
            ans = await client.answer()
            assert ans.status == 200
            assert "connection" not in ans.headers
            assert ans.json()["target"] == f"/echo/{i}"
            assert ans.json()["body"] == "x" * i
        assert len(srv.server.uvicorn.server_state.connections) == 1

    served(run, case)


@pytest.mark.parametrize(
    "request_bytes",
    [get("/one", version="1.0"), get("/one", "Connection: close")],
    ids=["http10", "connection-close"],
)
def test_closing_requests_get_connection_close_and_eof(run, request_bytes: bytes) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(request_bytes)
        assert (await client.closing(200)).json()["target"] == "/one"

    served(run, case)


def test_http10_keep_alive_is_answered_and_closed(run) -> None:
    # uvicorn keeps HTTP/1.0 connections for one request (docs/router.md)
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(get("/one", "Connection: keep-alive", version="1.0"))
        assert (await client.closing(200)).json()["target"] == "/one"

    served(run, case)


# -- pipelining and flow control ---------------------------------------------------


def test_pipelined_requests_are_answered_in_order(run) -> None:
    order = ["/late?ms=80", "/now/1", "/late?ms=10", "/now/2", "/late?ms=40", "/now/3"]

    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(b"".join(get(t) for t in order))  # one send
        assert [(await client.answer()).json()["target"] for _ in order] == order
        assert targets(backend) == order  # one at a time, in order

    served(run, case)


def test_pipelined_burst_of_300_is_answered_in_order(run) -> None:
    order = [f"/late?ms=1&i={i}" if i in (0, 200) else f"/n/{i}" for i in range(300)]

    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(b"".join(get(t) for t in order))
        assert [(await client.answer()).json()["target"] for _ in order] == order
        client.send(get("/after"))
        assert (await client.answer()).json()["target"] == "/after"

    served(run, case)


def test_client_that_does_not_read_is_not_buffered_without_bound(run) -> None:
    # 400 pipelined requests for 64 KiB each (25 MiB): while the client reads
    # nothing, the router must stop taking requests; then all arrive.
    count = 400

    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(get("/big") * count)
        await until(lambda: len(backend.requests) > 2, "answers piling up")
        await asyncio.sleep(0.5)
        assert len(backend.requests) < 200, len(backend.requests)  # not all taken
        for _ in range(count):
            assert len((await client.answer()).body) == BIG
        assert len(backend.requests) == count

    served(run, case)


# -- chunked bodies and 100-continue --------------------------------------------------


def test_chunked_request_body_is_reassembled(run) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(get("/c", "Transfer-Encoding: chunked", method="POST"))
        for piece in (b"5\r\nhello\r\n", b"6\r\n wor", b"ld\r\n", b"0\r\n\r\n"):
            client.send(piece)
            await client.writer.drain()
            await asyncio.sleep(0.01)
        ans = await client.answer()
        assert ans.status == 200
        assert ans.json()["body"] == "hello world"

    served(run, case)


def test_expect_100_continue_is_answered_before_the_body(run) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(get("/e", "Content-Length: 5", "Expect: 100-continue", method="POST"))
        interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), WAIT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(b"hello")
        ans = await client.answer()
        assert ans.status == 200
        assert ans.json()["body"] == "hello"
        assert "expect" not in ans.json()["headers"]  # answered here, not forwarded

    served(run, case)


# -- timeouts ---------------------------------------------------------------------------


def test_idle_connection_is_closed_after_keep_alive(run) -> None:
    async def case(srv: Served, idle: Client, backend: Backend) -> None:
        idle.send(get("/one"))
        assert (await idle.answer()).status == 200
        started = time.monotonic()
        assert await idle.at_eof()
        assert time.monotonic() - started >= 0.25
        await assert_serving(srv)

    served(run, case, keep_alive=0.3)


def test_busy_connection_outlives_keep_alive_and_head_timeout(run) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(get("/late?ms=700"))
        ans = await client.answer()
        assert ans.status == 200
        assert "connection" not in ans.headers
        client.send(get("/again"))
        assert (await client.answer()).json()["target"] == "/again"

    served(run, case, keep_alive=0.2, head_timeout=0.3)


# -- router failures ---------------------------------------------------------------------


def test_router_bug_is_500_json_with_request_id_and_the_connection_goes_on(
    run, monkeypatch
) -> None:
    real = proxy.forwardable

    def broken(headers):
        if any(k == b"x-boom" for k, _ in headers):
            raise RuntimeError("test bug")
        return real(headers)

    monkeypatch.setattr(proxy, "forwardable", broken)

    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(get("/boom", "X-Request-Id: rid-7", "X-Boom: 1") + get("/after"))
        ans = await client.answer()
        assert ans.status == 500
        assert ans.json() == {"error": "internal router error"}
        assert ans.headers["x-request-id"] == "rid-7"
        assert (await client.answer()).json()["target"] == "/after"

    served(run, case, allow=("failed to answer GET b'/boom'",))


# -- HEAD, absolute form, client gone ----------------------------------------------------


def test_head_answer_has_no_body(run) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(get("/echo", method="HEAD") + get("/n"))
        first = await client.answer(head_only=True)
        assert first.status == 200
        assert first.names.count("content-length") == 1
        # had any body byte been written, this would not parse as the next answer
        assert (await client.answer()).json()["target"] == "/n"

    served(run, case)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://example.com:8080/path?q=1&r", "/path?q=1&r"),
        ("http://example.com/", "/"),
    ],
)
def test_absolute_form_target_is_forwarded_in_origin_form(run, target: str, expected: str) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(get(target))
        assert (await client.answer()).json()["target"] == expected

    served(run, case)


def test_client_disconnect_while_answer_pending(run) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(get("/late?ms=300") + get("/queued"))
        await until(lambda: backend.requests, "request forwarded")
        client.writer.transport.abort()  # a reset, not a polite close
        connections = srv.server.uvicorn.server_state.connections
        await until(lambda: not connections, "connection forgotten")
        await asyncio.sleep(0.4)  # the answer comes after the client left: no error
        assert targets(backend) == ["/late?ms=300"]  # the queued one dropped
        await assert_serving(srv)

    served(run, case)


def test_client_disconnect_during_a_streamed_upload(run) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(CHUNKED + CHUNK)
        await client.writer.drain()
        await until(lambda: backend.connections, "upload forwarded")
        await asyncio.sleep(0.2)
        client.writer.transport.abort()
        await asyncio.sleep(0.3)
        assert backend.requests == []  # the backend never got a whole request
        await assert_serving(srv)

    served(run, case)


# -- limits ----------------------------------------------------------------------------


CHUNK = b"%x\r\n%s\r\n" % (600, b"y" * 600)
CHUNKED = get("/big", "Transfer-Encoding: chunked", method="POST")


@pytest.mark.parametrize(
    "data",
    [
        get("/big", f"Content-Length: {LIMIT + 1}", method="POST"),
        get("/big", f"Content-Length: {LIMIT + 1}", "Expect: 100-continue", method="POST"),
        post("/big", b"x" * (LIMIT + 1)) + get("/after"),
        post("/big", b"x" * (256 * 1024)) + get("/after"),
    ],
    ids=["head-only", "expect-continue", "length-one-read", "length-many-reads"],
)
def test_content_length_over_limit_is_413_without_reset(run, data: bytes) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(data)
        ans = await client.closing(413)
        assert str(LIMIT) in ans.json()["error"]
        assert re.fullmatch(r"[0-9a-f]{32}", ans.headers["x-request-id"])
        assert backend.requests == []
        await assert_serving(srv)

    served(run, case)


@pytest.mark.parametrize("pause", [0, 0.3], ids=["one-read", "streamed"])
def test_chunked_body_growing_over_limit_is_413(run, pause: float) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(CHUNKED + CHUNK)
        await client.writer.drain()
        await asyncio.sleep(pause)  # the first part already on its way to the backend
        client.send(CHUNK)  # 1200 bytes > LIMIT
        ans = await client.answer()
        assert ans.status == 413
        assert str(LIMIT) in ans.json()["error"]
        await assert_serving(srv)

    served(run, case)


@pytest.mark.parametrize(
    "data",
    [
        get("/h", *(f"X-Pad-{i}: {'p' * 1000}" for i in range(70))),
        get("/h?" + "q" * (70 * 1024)),
        # a header line that never ends: must not be buffered without bound
        b"GET /h HTTP/1.1\r\nX-Pad: " + b"v" * (200 * 1024),
    ],
    ids=["headers", "url", "unfinished-header"],
)
def test_head_over_64k_is_431_json(run, data: bytes) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(data)
        ans = await client.closing(431)
        assert str(64 * 1024) in ans.json()["error"]
        assert backend.requests == []
        await assert_serving(srv)

    served(run, case)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"GET /a b HTTP/1.1\r\n\r\n", "http"),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", "header"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "method"),  # TLS on a plain port
        (get("example.com:443", method="CONNECT"), "example.com:443"),  # authority form
    ],
    ids=["request-line", "header-name", "tls-hello", "connect"],
)
def test_malformed_request_is_400_json_naming_the_problem(run, data: bytes, problem: str) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(data)
        error = (await client.closing(400)).json()["error"]
        assert error.startswith("malformed HTTP request")
        assert problem in error.lower()
        assert backend.requests == []
        await assert_serving(srv)

    served(run, case)


@pytest.mark.parametrize("target", ["/now", "/late?ms=20"])
def test_upgrade_is_answered_over_http11_and_closed(run, target: str) -> None:
    async def case(srv: Served, client: Client, backend: Backend) -> None:
        client.send(get(target, "Connection: Upgrade", "Upgrade: h2c") + get("/next"))
        assert (await client.closing(200)).json()["target"] == target
        assert targets(backend) == [target]

    served(run, case, keep_alive=60)


# -- x-request-id -------------------------------------------------------------------------


def test_request_id_generated_or_kept_on_every_answer(run) -> None:
    cases = [  # (extra headers, body, the router's status)
        ((), PREDICT, 200),
        (("X-Modeldeploy-Track: blue",), PREDICT, 400),
    ]
    ids: list[str] = []

    async def case(srv: Served, client: Client, backend: Backend) -> None:
        async def check(headers: tuple[str, ...], body: bytes, status: int) -> None:
            ans = await srv.exchange(post("/predict", body, *headers))
            assert ans.status == status, ans
            assert re.fullmatch(r"[0-9a-f]{32}", ans.headers["x-request-id"])
            ids.append(ans.headers["x-request-id"])
            kept = await srv.exchange(post("/predict", body, *headers, "X-Request-Id: rid-7"))
            assert kept.status == status
            assert kept.names.count("x-request-id") == 1
            assert kept.headers["x-request-id"] == "rid-7"

        for headers, body, status in cases:
            await check(headers, body, status)
        srv.router.apply(table())  # no stable track: 503
        await check((), PREDICT, 503)
        assert len(set(ids)) == len(ids)  # a new id per request
        seen = [head.headers["x-request-id"] for head, _ in backend.requests]
        assert seen == [ids[0], "rid-7"]  # the upstream got the same ids

    served(run, case, allow_track_override=True)
