"""The router's HTTP server refusing what it must not take: bodies over the
limit (413 before the body is read, and without a reset), request heads over
64 KiB (431), malformed requests (400 naming the problem). Harness and
fixtures: frontend_harness.py.
"""

from __future__ import annotations

import pytest
from modeldeploy_router import frontend

from tests.router.frontend_harness import (
    LIMIT,
    Client,
    Served,
    get,
    post,
)

# -- 4. body limit ----------------------------------------------------------------------


def assert_refused_body(srv: Served) -> None:
    [req] = srv.app.seen  # one request reached the handler, without its body
    assert req.body_too_large
    assert req.body == b""


CHUNK = b"%x\r\n%s\r\n" % (600, b"y" * 600)
CHUNKED = get("/big", "Transfer-Encoding: chunked", method="POST")


@pytest.mark.parametrize(
    "head",
    [
        get("/big", f"Content-Length: {LIMIT + 1}", method="POST"),
        get("/big", f"Content-Length: {LIMIT + 1}", "Expect: 100-continue", method="POST"),
    ],
    ids=["plain", "expect-continue"],
)
def test_content_length_over_limit_is_413_before_the_body_is_sent(served, head: bytes) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(head)  # and no body: the 413 comes anyway (and no 100 Continue)
        assert (await client.closing(413)).json() == {"error": "body too large"}
        assert_refused_body(srv)

    served(case)


@pytest.mark.parametrize(
    "data",
    [
        post("/big", b"x" * (LIMIT + 1)) + get("/after"),
        post("/big", b"x" * (256 * 1024)) + get("/after"),
        CHUNKED + CHUNK * 3 + b"0\r\n\r\n" + get("/after"),
    ],
    ids=["length-one-read", "length-many-reads", "chunked"],
)
def test_body_sent_anyway_is_discarded_and_the_413_arrives_without_reset(
    served, data: bytes
) -> None:
    # A client that sends the whole body at once (most do), and a pipelined
    # request after it: the 413 must reach it (no RST from unread input) and
    # nothing after the refused request is handed to the handler.
    async def case(srv: Served, client: Client) -> None:
        client.send(data)
        await client.closing(413)
        assert_refused_body(srv)

    served(case)


def test_chunked_body_growing_over_limit_is_413(served) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(CHUNKED + CHUNK)
        await client.writer.drain()
        client.send(CHUNK)  # 1200 bytes > LIMIT
        ans = await client.answer()
        assert ans.status == 413
        assert ans.headers["connection"] == "close"
        client.send(CHUNK + b"0\r\n\r\n" + get("/after"))  # the rest is discarded
        assert await client.at_eof()
        assert_refused_body(srv)

    served(case)


# -- 5. header limit and malformed requests ------------------------------------------------


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
def test_head_over_64k_is_431_json(served, data: bytes) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(data)
        ans = await client.closing(431)
        assert str(frontend.MAX_HEADER_BYTES) in ans.json()["error"]
        assert srv.app.seen == []
        await srv.assert_serving()

    served(case)


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
def test_malformed_request_is_400_json_naming_the_problem(
    served, data: bytes, problem: str
) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(data)
        error = (await client.closing(400)).json()["error"]
        assert error.startswith("malformed HTTP request")
        assert problem in error.lower()
        assert srv.app.seen == []
        await srv.assert_serving()

    served(case)


@pytest.mark.parametrize("target", ["/now", "/late?ms=20"])
def test_upgrade_is_answered_over_http11_and_closed(served, target: str) -> None:
    async def case(srv: Served, client: Client) -> None:
        client.send(get(target, "Connection: Upgrade", "Upgrade: h2c") + get("/next"))
        # closed after the answer, not left open until the idle timeout
        assert (await client.closing(200)).json()["target"] == target

    served(case, keep_alive=60)
