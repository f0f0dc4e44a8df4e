"""The router benchmark's floor proxy forwards what the figure assumes it does:
method, path, content-type and body out; status, content-type and body back."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from benchmarks.router.floor import FloorProxy


async def test_forwards_the_request_and_returns_the_answer() -> None:
    seen: list[tuple[str, str, str | None, bytes]] = []

    async def upstream(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.method, request.path, request.headers.get("content-type"), body))
        return web.Response(status=201, body=b'{"ok":1}', content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream)
    async with TestServer(app, host="127.0.0.1") as server:
        proxy = FloorProxy(str(server.make_url("/")))
        parts = iter(
            [
                {"type": "http.request", "body": b'{"a":', "more_body": True},
                {"type": "http.request", "body": b"1}", "more_body": False},
            ]
        )
        sent: list[dict] = []

        async def receive() -> dict:
            return next(parts)

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v2/models/iris/infer",
            "headers": [(b"content-type", b"application/json"), (b"x-other", b"1")],
        }
        try:
            await proxy(scope, receive, send)
        finally:
            assert proxy.session is not None
            await proxy.session.close()

    assert seen == [("POST", "/v2/models/iris/infer", "application/json", b'{"a":1}')]
    start, body = sent
    assert start["status"] == 201
    assert (b"content-type", b"application/json") in start["headers"]
    assert (b"content-length", b"8") in start["headers"]
    assert body == {"type": "http.response.body", "body": b'{"ok":1}'}
