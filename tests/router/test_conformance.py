"""HTTP conformance and fuzzing of the router's server side: request-smuggling
attempts, malformed heads, pipelining mixes and slow clients, against the real
router in-process (harness.py) before a scripted echo backend that records
every request it parses. Invariants: the router and the backend agree on
where each request starts and ends (the requests the backend parsed are
exactly those the router answered with the backend's echo, in order: no
desync, so nothing hidden in a body is smuggled), every answer is one
well-formed HTTP/1.1 answer, nothing is logged at ERROR, and the router keeps
serving. Bounded: a fixed case list plus a few dozen hypothesis examples."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.router.harness import (
    WAIT,
    Backend,
    Served,
    echo_script,
    get,
    post,
    serving,
    table,
)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def body_case(*headers: bytes, body: bytes = b"") -> bytes:
    return (
        b"POST /front HTTP/1.1\r\nHost: t\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + (b"\r\n" + body)
    )


# Each hides SMUGGLED where one reading of the framing sees a body and another
# a second request.
SMUGGLING = {
    "cl-and-te": body_case(
        b"Content-Length: 4", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n" + SMUGGLED
    ),
    "te-and-cl": body_case(
        b"Transfer-Encoding: chunked", b"Content-Length: 60", body=b"0\r\n\r\n" + SMUGGLED
    ),
    "two-lengths": body_case(b"Content-Length: 0", b"Content-Length: 37", body=SMUGGLED),
    "length-list": body_case(b"Content-Length: 0, 37", body=SMUGGLED),
    "te-xchunked": body_case(b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n" + SMUGGLED),
    "te-identity-chunked": body_case(
        b"Transfer-Encoding: identity, chunked", body=b"0\r\n\r\n" + SMUGGLED
    ),
    "te-chunked-identity": body_case(
        b"Transfer-Encoding: chunked, identity", body=b"0\r\n\r\n" + SMUGGLED
    ),
    "te-space-colon": body_case(b"Transfer-Encoding : chunked", body=b"0\r\n\r\n" + SMUGGLED),
    "te-tab": body_case(b"Transfer-Encoding:\tchunked", body=b"0\r\n\r\n" + SMUGGLED),
    "te-obs-fold": body_case(
        b"Transfer-Encoding: x", b" chunked", body=b"0\r\n\r\n" + SMUGGLED
    ),
    "te-twice": body_case(
        b"Transfer-Encoding: chunked", b"Transfer-Encoding: x", body=b"0\r\n\r\n" + SMUGGLED
    ),
    "cl-plus": body_case(b"Content-Length: +37", body=SMUGGLED),
    "cl-hex": body_case(b"Content-Length: 0x25", body=SMUGGLED),
    "cl-negative": body_case(b"Content-Length: -1", body=SMUGGLED),
    "cl-space-in": body_case(b"Content-Length: 3 7", body=SMUGGLED),
    "bare-lf-head": b"POST /front HTTP/1.1\nHost: t\nContent-Length: 0\n\n" + SMUGGLED,
    "bare-cr": b"POST /front HTTP/1.1\rHost: t\r\nContent-Length: 0\r\n\r\n" + SMUGGLED,
    "nul-in-header": body_case(b"X-A: a\x00b", b"Content-Length: 37", body=SMUGGLED),
    "chunk-size-overflow": body_case(
        b"Transfer-Encoding: chunked", body=b"ffffffffffffffffff1\r\n" + SMUGGLED
    ),
    "chunk-ext-lf": body_case(
        b"Transfer-Encoding: chunked", body=b"0;x\n\r\n" + SMUGGLED
    ),
    "chunk-lf-only": body_case(b"Transfer-Encoding: chunked", body=b"0\n\n" + SMUGGLED),
    "http09": b"GET /front\r\n\r\n" + SMUGGLED,
    "version-2": b"GET /front HTTP/2.0\r\nHost: t\r\n\r\n" + SMUGGLED,
    "space-in-target": b"GET /fr ont HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLED,
}  # fmt: skip


QUIET = 1.0  # seconds without an answer: the router waits for more input


async def answers(served: Served, data: bytes) -> list[tuple[int, bytes]]:
    """Every answer to `data` on one connection until the router closes it or
    goes quiet, each parsed strictly (one status line, one framing)."""
    client = await served.connect()
    client.send(data)
    out = []
    try:
        while True:
            try:
                ans = await asyncio.wait_for(client.answer(), QUIET)
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # closed
            except TimeoutError:
                break  # quiet: waiting for a body that never comes
            assert ans.names.count("content-length") <= 1, ans
            assert not ("content-length" in ans.names and "transfer-encoding" in ans.names)
            out.append((ans.status, ans.body))
            if ans.headers.get("connection") == "close":
                assert await client.at_eof()
                break
    finally:
        await client.close()
    return out


def check(backend: Backend, got: list[tuple[int, bytes]]) -> None:
    """The backend parsed exactly the requests whose echo the client got."""
    echoed = [orjson.loads(body)["target"] for status, body in got if status == 200]
    assert [head.target for head, _ in backend.requests] == echoed


@pytest.mark.parametrize("data", list(SMUGGLING.values()), ids=list(SMUGGLING))
def test_no_request_is_smuggled_past_the_router(run, data: bytes) -> None:
    async def main() -> None:
        async with Backend(echo_script) as backend, serving(table(stable=backend.url)) as srv:
            got = await asyncio.wait_for(answers(srv, data), 3 * WAIT)
            await asyncio.sleep(0.05)  # a request the router forwarded reaches the backend
            check(backend, got)  # /smuggled only where both read it as a request of its own
            assert all(status in (200, 400, 408, 413, 431) for status, _ in got)
            assert (await srv.exchange(get("/ok"))).status == 200

    run(main())


def test_pipelined_mix_of_methods_is_answered_in_order(run) -> None:
    data = (
        get("/a", method="HEAD")
        + post("/b", b"xyz")
        + get("/c", method="DELETE")
        + get("/d", method="OPTIONS")
        + get("/e", method="HEAD")
        + get("/f")
    )

    async def main() -> None:
        async with Backend(echo_script) as backend, serving(table(stable=backend.url)) as srv:
            client = await srv.connect()
            client.send(data)
            statuses = []
            for head_only in (True, False, False, False, True, False):
                statuses.append((await client.answer(head_only)).status)
            assert statuses == [200] * 6
            assert [h.target for h, _ in backend.requests] == ["/a", "/b", "/c", "/d", "/e", "/f"]
            assert [b for _, b in backend.requests][1] == b"xyz"
            await client.close()

    run(main())


def test_slow_body_and_slow_reader_are_served(run) -> None:
    async def main() -> None:
        async with Backend(echo_script) as backend, serving(table(stable=backend.url)) as srv:
            client = await srv.connect()
            client.send(get("/slow", "Content-Length: 6", method="POST"))
            for byte in b"abcdef":  # a body a byte at a time is not a slow head
                await asyncio.sleep(0.05)
                client.send(bytes([byte]))
            head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), WAIT)
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = b""
            while len(body) < length:  # read the answer a few bytes at a time
                body += await asyncio.wait_for(client.reader.read(7), WAIT)
                await asyncio.sleep(0.001)
            assert b'"body":"abcdef"' in body
            await client.close()

    run(main(), allow=())


# -- fuzz ----------------------------------------------------------------------------------

TOKENS = st.sampled_from(  # no HEAD: its answer's length does not frame a body
    [b"GET", b"POST", b"PUT", b"G\x00T", b"", b"get", b"PRI", b"CONNECT", b"\xff"]
)
TARGETS = st.sampled_from(
    [b"/", b"/x?y=1", b"*", b"http://h/p", b"//", b"/%00", b"/\xff", b"/a b", b"", b"h:80"]
)
VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/0.9", b"HTTP/11", b""])
NAMES = st.sampled_from(
    [b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"X-A",
     b"Upgrade", b"X-Request-Id", b"Bad Name", b"", b"X\x00"]
)  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        [b"0", b"5", b"chunked", b"close", b"100-continue", b"h2c", b"x\x00y", b"-1", b"1e3"]
    ),
    st.binary(max_size=12),
)
EOLS = st.sampled_from([b"\r\n", b"\n", b"\r"])


@st.composite
def requests(draw) -> bytes:
    eol = draw(EOLS)
    line = b" ".join([draw(TOKENS), draw(TARGETS), draw(VERSIONS)])
    headers = [draw(NAMES) + b": " + draw(VALUES) for _ in range(draw(st.integers(0, 5)))]
    body = draw(st.binary(max_size=40))
    return eol.join([line, *headers, b"", b""]) + body + SMUGGLED


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=requests())
def test_random_heads_never_smuggle_or_break_the_router(run, data: bytes) -> None:
    async def main() -> None:
        async with Backend(echo_script) as backend, serving(table(stable=backend.url)) as srv:
            got = await answers(srv, data)
            await asyncio.sleep(0.05)
            check(backend, got)
            assert (await srv.exchange(get("/ok"))).status == 200

    run(main())
