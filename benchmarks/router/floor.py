"""The floor of the router's stack: a proxy on the same maintained parts
(uvicorn with httptools and uvloop, an aiohttp client session with the
router's session options) doing nothing else: no routing table, limits,
request ids, metrics or mirroring. What it adds at one connection is the
least the router can add on this stack; the router's addition above it is
its own work. Benchmark-only, never a product path.

`--server aiohttp` and `--server granian` put the same client behind
aiohttp's own server and behind granian (ASGI; `pip install granian`), the
other maintained servers the router could run on.

    python -m benchmarks.router.floor --port PORT --upstream http://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import aiohttp

UPSTREAM_ENV = "FLOOR_UPSTREAM"  # how granian's worker process learns the upstream


class FloorProxy:
    """Forwards a request's method, path, content-type and body to one upstream
    and its status, content-type and body back."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def forward(
        self, method: str, path: str, content_type: str | None, body: bytes
    ) -> tuple[int, str, bytes]:
        """(status, content-type, body) of the upstream's answer."""
        if self.session is None:  # created on the server's loop
            self.session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
            )
        headers = {"content-type": content_type} if content_type else {}
        url = self.upstream + path
        async with self.session.request(method, url, data=body, headers=headers) as r:
            answer = await r.read()
            return r.status, r.headers.get("content-type", "application/octet-stream"), answer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI app (uvicorn, granian)."""
        if scope["type"] != "http":
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = next((v.decode() for k, v in scope["headers"] if k == b"content-type"), None)
        status, answer_type, answer = await self.forward(
            scope["method"], scope["path"], content_type, body
        )
        out = [(b"content-type", answer_type.encode()), (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": answer})


def granian_app() -> FloorProxy:
    """granian's factory target: its worker is a process of its own."""
    return FloorProxy(os.environ[UPSTREAM_ENV])


def serve_uvicorn(proxy: FloorProxy, port: int) -> None:
    import uvicorn

    uvicorn.run(proxy, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                ws="none", lifespan="off", access_log=False, log_level="warning")  # fmt: skip


def serve_aiohttp(proxy: FloorProxy, port: int) -> None:
    import uvloop
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        status, answer_type, answer = await proxy.forward(
            request.method, request.path, request.headers.get("content-type"), await request.read()
        )
        return web.Response(status=status, body=answer, headers={"content-type": answer_type})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                loop=uvloop.new_event_loop())  # fmt: skip


def serve_granian(upstream: str, port: int) -> None:
    try:
        from granian import Granian
        from granian.constants import Interfaces, Loops
    except ImportError:
        raise SystemExit("--server granian needs granian: pip install granian") from None
    os.environ[UPSTREAM_ENV] = upstream
    Granian("benchmarks.router.floor:granian_app", address="127.0.0.1", port=port,
            interface=Interfaces.ASGI, factory=True, workers=1, loop=Loops.uvloop,
            log_enabled=False).serve()  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.router.floor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8081")
    p.add_argument("--server", choices=["uvicorn", "aiohttp", "granian"], default="uvicorn")
    args = p.parse_args(argv)
    if args.server == "granian":
        serve_granian(args.upstream, args.port)
    elif args.server == "aiohttp":
        serve_aiohttp(FloorProxy(args.upstream), args.port)
    else:
        serve_uvicorn(FloorProxy(args.upstream), args.port)


if __name__ == "__main__":
    main()
