"""A TCP proxy the chaos tests control, to break connections on purpose.

`TcpProxy` listens on 127.0.0.1 (a free port) and forwards bytes to one
upstream (host, port) unchanged; TLS passes through, so a kubeconfig pointed at
the proxy (`proxied_kubeconfig`) still verifies the API server's certificate.
What it breaks, and nothing else:

- `cut()`: every open connection is closed at once, both sides (as an API
  server restart or a load balancer dropping its flows would); new connections
  are forwarded as before.
- `blackhole()`: until `heal()`, connections are accepted but no byte moves in
  either direction on any connection, old or new (a partition where packets
  vanish: nothing is refused, nothing answers).
- `heal(reset_held=True)`: bytes move again on new connections. The
  connections that were held are closed (the partition ends with the flows
  reset), or with `reset_held=False` stay open and silent for ever, as a flow
  lost by a NAT or conntrack table would: only a client-side timeout ends them.

The proxy runs its own asyncio loop in a daemon thread; `close()` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

_CHUNK = 65536


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0  # connections accepted since start (a test sees reconnects)
        self._holding = False
        self._open: set[asyncio.StreamWriter] = set()  # both sides of live connections
        self._held: set[asyncio.StreamWriter] = set()  # silenced for ever (reset_held=False)
        self._moving = asyncio.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    # -- control (from the test's thread) --------------------------------------
    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def cut(self) -> int:
        """Close every open connection now; returns how many there were."""
        return self._call(self._cut())

    def blackhole(self) -> None:
        self._call(self._set_holding(True))

    def heal(self, reset_held: bool = True) -> None:
        self._call(self._heal(reset_held))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # -- the loop's side --------------------------------------------------------
    async def _start(self) -> None:
        self._moving.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()
        for w in list(self._held):
            w.close()
        self._held.clear()

    async def _cut(self) -> int:
        writers = list(self._open)
        for w in writers:
            w.transport.abort()  # RST, not a polite FIN: the peer sees a dead flow
        self._open.clear()
        return len(writers) // 2

    async def _set_holding(self, holding: bool) -> None:
        self._holding = holding
        if holding:
            self._moving.clear()
        else:
            self._moving.set()

    async def _heal(self, reset_held: bool) -> None:
        held = list(self._open)
        self._open.clear()
        if reset_held:
            for w in held:
                w.transport.abort()
        else:
            self._held.update(held)  # never written to or read from again
        await self._set_holding(False)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, up_writer}
        self._open.update(pair)
        await asyncio.gather(
            self._pump(reader, up_writer, pair), self._pump(up_reader, writer, pair)
        )

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, pair: set[asyncio.StreamWriter]
    ) -> None:
        try:
            while True:
                await self._moving.wait()
                if not pair <= self._open:
                    return  # cut, or held for ever by heal(reset_held=False)
                data = await src.read(_CHUNK)
                if not data:
                    break
                # Bytes read while a blackhole began are held until it ends.
                await self._moving.wait()
                if not pair <= self._open:
                    return
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if pair <= self._open:
                for w in pair:
                    w.transport.abort()
                self._open.difference_update(pair)


def proxied_kubeconfig(kubeconfig: Path, proxy: TcpProxy, out: Path) -> Path:
    """A copy of `kubeconfig` whose cluster servers point at the proxy instead."""
    doc = yaml.safe_load(kubeconfig.read_text())
    for entry in doc.get("clusters") or []:
        parts = urlsplit(entry["cluster"]["server"])
        entry["cluster"]["server"] = urlunsplit(parts._replace(netloc=proxy.url_host))
    out.write_text(yaml.safe_dump(doc))
    return out


def upstream_of(server_url: str) -> tuple[str, int]:
    parts = urlsplit(server_url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


class SlowOrFailingPrometheus:
    """An HTTP front for the real Prometheus (127.0.0.1, a free port), for the
    operator's --prometheus-url. `mode` says what it breaks, and only for
    `/api/v1/query` (readiness and everything else pass through):

    - "pass": forwarded unchanged;
    - "slow": forwarded after `delay` seconds (set it beyond the operator's
      query timeout: a Prometheus overloaded by a heavy query);
    - "errors": answered 503 with Prometheus's own error body, never forwarded
      (a Prometheus refusing queries while it replays its WAL).
    """

    def __init__(self, upstream: str, delay: float = 10.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.mode = "pass"
        self.queries = {"pass": 0, "slow": 0, "errors": 0}
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = None
        self._session = None

    def start(self) -> SlowOrFailingPrometheus:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        from aiohttp import ClientSession, web

        self._session = ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request):
        from aiohttp import web

        mode = self.mode if request.path == "/api/v1/query" else "pass"
        if request.path == "/api/v1/query":
            self.queries[mode] += 1
        if mode == "errors":
            body = {"status": "error", "errorType": "unavailable", "error": "chaos: WAL replay"}
            return web.json_response(body, status=503)
        if mode == "slow":
            await asyncio.sleep(self.delay)
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=await request.read()
        ) as answer:
            return web.Response(
                body=await answer.read(), status=answer.status, content_type=answer.content_type
            )
