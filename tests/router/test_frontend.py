"""The router's HTTP/1.1 server (frontend.py) over real loopback sockets:
keep-alive, pipelining, chunked bodies, 100-continue, idle timeout, handler
failures, HEAD, absolute-form targets, clients that go away, and the
x-request-id of the router's own answers.

Most tests run an `HttpServer` in-process with a small test handler and talk
to it with a raw socket (frontend_harness.py), so that the exact bytes on the
wire are what is checked, under uvloop (what `modeldeploy-router` uses) and
the default asyncio loop, failing on any ERROR logged by the server or loop.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from modeldeploy_router import proxy
from modeldeploy_router.routing import EndpointPool, RoutingTable, Track

from tests.router.frontend_harness import (
    BIG,
    PREDICT,
    WAIT,
    Client,
    Served,
    buffered,
    echo,
    get,
    post,
    router_serving,
    until,
)

# -- 1. keep-alive ----------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        for i in range(3):
            client.send(post(f"/echo/{i}", b"x" * i))
            ans = await client.answer()
            assert ans.status == 200
            assert "connection" not in ans.headers
            assert ans.json()["target"] == f"/echo/{i}"
            assert ans.json()["body"] == "x" * i
        assert len(srv.server.connections) == 1  # one connection did it all

    served(case)


@pytest.mark.parametrize(
    "request_bytes",
    [get("/one", version="1.0"), get("/one", "Connection: close")],
    ids=["http10", "connection-close"],
)
def test_closing_requests_get_connection_close_and_eof(served, request_bytes: bytes) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(request_bytes)
        assert (await client.closing(200)).json()["target"] == "/one"

    served(case)


def test_http10_with_keep_alive_stays_open(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        for _ in range(2):
            client.send(get("/one", "Connection: keep-alive", version="1.0"))
            ans = await client.answer()
            assert ans.status == 200
            assert "connection" not in ans.headers

    served(case)


# -- 2. pipelining and flow control ---------------------------------------------------


def test_pipelined_requests_are_answered_in_order(served) -> None:
    targets = ["/late?ms=80", "/now/1", "/late?ms=10", "/now/2", "/late?ms=40", "/now/3"]

    async def case(srv: Served, client: Client) -> None:
        client.send(b"".join(get(t) for t in targets))  # one send
        assert [(await client.answer()).json()["target"] for _ in targets] == targets
        # the handler saw them in order too, one at a time
        assert [r.target.decode() for r in srv.app.seen] == targets

    served(case)


def test_pipelined_burst_of_500_is_answered_in_order(served) -> None:
    # A late first answer queues the rest (reading pauses past MAX_PIPELINED);
    # the queue is then answered inline, 400 in a row (deep enough that
    # answering them recursively would hit the recursion limit), and a late
    # one makes it stop and resume.
    targets = [f"/late?ms=1&i={i}" if i in (0, 400) else f"/n/{i}" for i in range(500)]

    async def case(srv: Served, client: Client) -> None:
        client.send(b"".join(get(t) for t in targets))
        assert [(await client.answer()).json()["target"] for _ in targets] == targets
        client.send(get("/after"))  # reading resumed
        assert (await client.answer()).json()["target"] == "/after"

    served(case)


def test_client_that_does_not_read_is_not_buffered_without_bound(served) -> None:
    # 400 pipelined requests for 64 KiB each (25 MiB, far more than the socket
    # buffers hold): while the client reads nothing, the server must stop
    # taking requests instead of buffering every answer; then all arrive.
    count = 400

    async def case(srv: Served, client: Client) -> None:
        client.send(get("/big") * count)
        await until(lambda: buffered(srv.server.connections) > BIG, "answers piling up")
        for _ in range(count):
            assert len((await client.answer()).body) == BIG
        assert len(srv.app.buffered) == count
        assert max(srv.app.buffered) < 16 * BIG, max(srv.app.buffered)

    served(case)


# -- 3. chunked bodies and 100-continue ------------------------------------------------


def test_chunked_request_body_is_reassembled(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/c", "Transfer-Encoding: chunked", method="POST"))
        for piece in (b"5\r\nhello\r\n", b"6\r\n wor", b"ld\r\n", b"0\r\n\r\n"):
            client.send(piece)
            await client.writer.drain()
        ans = await client.answer()
        assert ans.status == 200
        assert ans.json()["body"] == "hello world"

    served(case)


def test_expect_100_continue_is_answered_before_the_body(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/e", "Content-Length: 5", "Expect: 100-continue", method="POST"))
        interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), WAIT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert srv.app.seen == []  # nothing handed over before the body
        client.send(b"hello")
        ans = await client.answer()
        assert ans.status == 200
        assert ans.json()["body"] == "hello"

    served(case)


# -- 6. idle timeout ---------------------------------------------------------------------


def test_idle_connection_is_closed_after_keep_alive(served) -> None:
    async def case(srv: Served, idle: Client) -> None:
        idle.send(get("/one"))
        assert (await idle.answer()).status == 200
        stalled = await srv.connect()
        stalled.send(b"GET /half HTTP/1.1\r\nHost: te")  # a head that never ends
        started = time.monotonic()
        assert await idle.at_eof()
        assert await stalled.at_eof()
        assert time.monotonic() - started >= 0.25  # (uvloop's clock is coarse)
        await stalled.close()
        await srv.assert_serving()

    served(case, keep_alive=0.3)


def test_busy_connection_outlives_keep_alive(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/late?ms=700"))  # several idle sweeps pass meanwhile
        ans = await client.answer()
        assert ans.status == 200
        assert "connection" not in ans.headers
        client.send(get("/again"))  # and the connection is still usable
        assert (await client.answer()).json()["target"] == "/again"

    served(case, keep_alive=0.2)


# -- 7. handler failures --------------------------------------------------------------------


def test_handler_exception_is_500_json_and_the_connection_goes_on(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/boom", "X-Request-Id: rid-7") + get("/after"))
        ans = await client.answer()
        assert ans.status == 500
        assert ans.json() == {"error": "internal router error"}
        assert ans.headers["x-request-id"] == "rid-7"  # the client can still report it
        assert (await client.answer()).json()["target"] == "/after"

    served(case, allow=("handler failed for GET b'/boom'",))


@pytest.mark.parametrize("target", ["/twice", "/answer-then-boom"])
def test_second_answer_to_a_request_is_ignored(served, target: str) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get(target) + get("/late?ms=20") + get("/after"))
        first = await client.answer()
        assert first.status == 200
        assert first.json()["target"] == target
        assert (await client.answer()).json()["target"] == "/late?ms=20"
        assert (await client.answer()).json()["target"] == "/after"

    served(case, allow=("handler failed for GET b'/answer-then-boom'",))


# -- 8. HEAD --------------------------------------------------------------------------------


def test_head_answer_has_no_body_and_keeps_content_length(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        # a handler body (echo) is dropped and its length announced; a
        # handler-given content-length is kept as it is
        client.send(get("/echo", method="HEAD") + get("/length", method="HEAD") + get("/n"))
        first = await client.answer(head_only=True)
        assert first.status == 200
        assert int(first.headers["content-length"]) == len(echo(srv.app.seen[0]).body)
        second = await client.answer(head_only=True)
        assert second.headers["content-length"] == "1234"
        assert second.names.count("content-length") == 1
        # had any body byte been written, this would not parse as the next answer
        assert (await client.answer()).json()["target"] == "/n"

    served(case)


# -- 9. absolute-form target -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("http://example.com:8080/path?q=1&r", "/path?q=1&r"),
        ("http://example.com", "/"),
        ("http://example.com?q", "/?q"),
    ],
)
def test_absolute_form_target_reaches_the_handler_as_origin_form(
    served, target: str, expected: str
) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get(target))
        doc = (await client.answer()).json()
        assert doc["target"] == expected
        assert doc["path"] == expected.split("?")[0]

    served(case)


# -- 10. client gone while its answer is pending ------------------------------------------------


def test_client_disconnect_while_answer_pending(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get("/hold") + get("/queued"))
        await until(lambda: len(srv.app.held) == 1, "request handed to the handler")
        client.writer.transport.abort()  # a reset, not a polite close
        await until(lambda: not srv.server.connections, "connection forgotten")
        srv.app.release()  # the answer comes after the client left: no error
        assert [r.target for r in srv.app.seen] == [b"/hold"]  # the queued one dropped
        await srv.assert_serving()

    served(case)


# -- 13. x-request-id ------------------------------------------------------------------------------


SETTINGS = proxy.Settings(
    model="iris", max_body_bytes=100, allow_track_override=True, mirror_in_process=True
)


def one_stable(stable: str) -> RoutingTable:
    return RoutingTable(
        model="iris", tracks={"stable": Track(name="stable", pool=EndpointPool((stable,)))}
    )


def test_request_id_generated_or_kept_on_every_answer(run, procs) -> None:
    upstream = procs.upstream("stable")
    cases = [  # (headers, body, the router's status)
        ({}, PREDICT, 200),
        ({}, b"[" + b"0," * 100 + b"0]", 413),
        ({"x-modeldeploy-track": "blue"}, PREDICT, 400),
    ]
    ids: list[str] = []

    async def main() -> None:
        async with (
            router_serving(SETTINGS, one_stable(upstream)) as (router, base),
            httpx.AsyncClient() as http,
        ):

            async def check(headers: dict, body: bytes, status: int) -> None:
                resp = await http.post(f"{base}/predict", content=body, headers=headers)
                assert resp.status_code == status, resp.text
                assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["x-request-id"])
                ids.append(resp.headers["x-request-id"])
                headers = {**headers, "x-request-id": "rid-7"}
                kept = await http.post(f"{base}/predict", content=body, headers=headers)
                assert kept.status_code == status
                assert kept.headers.get_list("x-request-id") == ["rid-7"]

            for headers, body, status in cases:
                await check(headers, body, status)
            router.apply(RoutingTable(model="iris"))  # no stable track: 503
            await check({}, PREDICT, 503)

    run(main())
    assert len(set(ids)) == len(ids)  # a new id per request
    seen = httpx.get(f"{upstream}/_stats").json()["request_ids"]
    assert seen == [ids[0], "rid-7"]  # the upstream got the same ids
