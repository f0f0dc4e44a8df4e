"""Shadow mirroring in a child process: the primary event loop only writes frames.

Why a process: the shadow exchange and comparison on the router's own loop
cost the primary path most of the 10% p50 budget for mirroring
(benchmarks/README.md, Router).

The router and its child share a socketpair. Each frame is a 4-byte
big-endian length and a pickled tuple; both ends are this module in the same
container, so pickle (fast for bytes, no schema to keep) is safe here.

    router -> child  ("shadow", model, version, revision, urls)   the shadow track now
                     ("copy", primary_version, method, path_qs, headers, body,
                      primary_status, primary_body)
                     ("scrape", dropped_by_router)                 metrics please
    child -> router  exposition text, one frame per scrape, in order

The child runs the same `shadow.Mirror` as the in-process mode (bounded queue,
bounded concurrency, comparison, metrics), so behaviour and metric names are
identical; the router's /metrics appends the child's exposition to its own.
Copies the router cannot hand over (the child is gone or restarting, or more
than a quarter of `mirror_queue_bytes` wait unsent) are dropped and counted; the
count travels with each scrape request so it lands in the same
`modeldeploy_router_mirror_total{result="dropped"}` series as the child's own
drops. A child that dies is restarted after RESTART_SECONDS; closing the
socket (router shutdown) makes the child exit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import pickle
import socket
import subprocess
import sys
from collections import deque

from modeldeploy_router import routing, shadow
from modeldeploy_router import settings as settings_mod
from modeldeploy_router.metrics import RouterMetrics
from modeldeploy_router.settings import Settings
from modeldeploy_router.upstream import Upstream

log = logging.getLogger(__name__)

RESTART_SECONDS = 1.0
SCRAPE_TIMEOUT = 5.0
# Copies wait up to this long to share one write: a write that wakes the child
# costs the router more CPU than pickling the copy (benchmarks/README.md,
# Router). Control and scrape frames go at once.
FLUSH_SECONDS = 0.005
FLUSH_BYTES = 256 * 1024  # ... or until this much waits
_LEN = 4


def _frame(message: tuple) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(payload).to_bytes(_LEN, "big") + payload


class ShadowProcess(asyncio.Protocol):
    """Router side: same submit/start/stop as `shadow.Mirror`, work done elsewhere."""

    def __init__(self, settings: Settings) -> None:
        self.child_args = settings_mod.child_args(settings)
        self.max_unsent = settings.mirror_queue_bytes // 4  # on their way to the child
        self.dropped = 0  # copies the router could not hand over, ever
        self._proc: subprocess.Popen | None = None
        self._transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._scrapes: deque[asyncio.Future[bytes]] = deque()
        self._buffer = bytearray()
        self._shadow_frame: bytes | None = None  # replayed to a restarted child
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        old = self._proc
        if old is not None and old.poll() is None:
            old.kill()  # closed its end but hangs: a restart replaces it
            await asyncio.to_thread(old.wait)
        parent, child = socket.socketpair()
        with child:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__, "--fd", str(child.fileno()), *self.child_args],
                pass_fds=(child.fileno(),),
            )
        loop = asyncio.get_running_loop()
        await loop.create_unix_connection(lambda: self, sock=parent)
        if self._shadow_frame is not None:
            self._write(self._shadow_frame)

    async def stop(self) -> None:
        self._stopping = True
        if self._transport is not None:
            self._flush()  # copies already accepted reach the child
            self._transport.close()  # EOF: the child drains nothing more and exits
        proc = self._proc
        if proc is not None:
            try:
                await asyncio.to_thread(proc.wait, 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= _LEN:
            size = int.from_bytes(self._buffer[:_LEN], "big")
            if len(self._buffer) < _LEN + size:
                break
            text = bytes(self._buffer[_LEN : _LEN + size])
            del self._buffer[: _LEN + size]
            if self._scrapes:
                future = self._scrapes.popleft()
                if not future.done():
                    future.set_result(text)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._flush()  # no transport: drops the copies that wait and stops the timer
        self._buffer.clear()
        while self._scrapes:
            future = self._scrapes.popleft()
            if not future.done():
                future.set_exception(ConnectionError("shadow process gone"))
        if not self._stopping:
            log.error("shadow process exited (%s); restarting", self._returncode())
            asyncio.get_running_loop().call_later(RESTART_SECONDS, self._restart)

    def _returncode(self) -> str:
        code = self._proc.poll() if self._proc is not None else None
        return "still running" if code is None else f"exit code {code}"

    def _restart(self) -> None:
        if not self._stopping:
            task = asyncio.ensure_future(self.start())
            task.add_done_callback(self._restart_failed)

    def _restart_failed(self, task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("shadow process restart failed: %r", task.exception())
            asyncio.get_running_loop().call_later(RESTART_SECONDS, self._restart)

    # -- frames ------------------------------------------------------------------
    def _write(self, frame: bytes, at_once: bool = True) -> None:
        """Queue a frame. A copy (`at_once` False) waits for the next flush,
        at most FLUSH_SECONDS; any other frame flushes what waits, in order."""
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if at_once or self._pending_bytes >= FLUSH_BYTES:
            self._flush()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._transport is not None and self._pending:
            self._transport.write(b"".join(self._pending))
        self._pending, self._pending_bytes = [], 0

    def set_table(self, table: routing.RoutingTable) -> None:
        track = table.tracks.get(routing.SHADOW)
        message = (
            ("shadow", table.model, track.version, track.revision, track.pool.urls)
            if track is not None
            else ("shadow", table.model, "", "", None)
        )
        frame = _frame(message)
        if frame != self._shadow_frame:
            self._shadow_frame = frame
            if self._transport is not None:
                self._write(frame)

    def dropped_too_large(self, model: str) -> None:
        self.dropped += 1

    def submit(self, copy: shadow.Copy) -> bool:
        transport = self._transport
        if (
            transport is None
            or self._pending_bytes + transport.get_write_buffer_size() > self.max_unsent
        ):
            self.dropped += 1
            return False
        # model and shadow track: the child has them from the last "shadow" frame
        self._write(_frame(("copy", *copy[2:])), at_once=False)
        return True

    async def exposition(self) -> bytes:
        """The child's metrics text; empty when it does not answer."""
        if self._transport is None:
            return b""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._scrapes.append(future)
        self._write(_frame(("scrape", self.dropped)))
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT):
                return await future
        except (TimeoutError, ConnectionError) as exc:
            log.warning("shadow process did not answer a metrics scrape: %r", exc)
            return b""


# -- the child ---------------------------------------------------------------------


class _Child:
    def __init__(self, settings: Settings) -> None:
        self.metrics = RouterMetrics(part=RouterMetrics.SHADOW)
        self.upstream = Upstream(settings.connect_timeout, settings.shadow_timeout)
        self.track: routing.Track | None = None
        self.model = ""
        self.dropped_by_router = 0
        self.mirror = shadow.Mirror(
            self.upstream, self.metrics, settings, current_shadow=lambda: self.track
        )

    def handle(self, message: tuple, writer: asyncio.StreamWriter) -> None:
        kind = message[0]
        if kind == "copy":
            _, primary_version, method, path_qs, headers, body, status, primary_body = message
            if self.track is None:
                self.metrics.mirror_result(self.model, "dropped")
                return
            self.mirror.submit(
                shadow.Copy(
                    self.model, self.track, primary_version, method, path_qs, headers, body,
                    status, primary_body,
                )
            )  # fmt: skip
        elif kind == "shadow":
            _, self.model, version, revision, urls = message
            if urls is None:
                self.track = None
                return
            old = self.track
            pool = old.pool if old is not None and old.pool.urls == urls else None
            self.track = routing.Track(
                routing.SHADOW, version, revision, pool=pool or routing.EndpointPool(urls)
            )
            self.upstream.retain(set(urls))
        elif kind == "scrape":
            delta = message[1] - self.dropped_by_router
            if delta > 0:
                self.metrics.mirror.labels(self.model, "dropped").inc(delta)
                self.dropped_by_router = message[1]
            writer.write(_frame_raw(self.metrics.exposition()))

    async def run(self, fd: int) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fd))
        await self.mirror.start()
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(_LEN), "big")
                self.handle(pickle.loads(await reader.readexactly(size)), writer)
                # Let idle workers take the copy before the next one (readexactly
                # does not yield while frames are buffered): the queue bound then
                # means what it says, as in the in-process mode.
                await asyncio.sleep(0)
        except asyncio.IncompleteReadError:
            pass  # the router closed its end: shut down
        finally:
            await self.mirror.stop()
            await self.upstream.close()
            writer.close()


def _frame_raw(payload: bytes) -> bytes:
    return len(payload).to_bytes(_LEN, "big") + payload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="modeldeploy-router's shadow worker (internal)")
    p.add_argument("--fd", type=int, required=True)
    settings_mod.add_child_flags(p)
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper() if args.log_level != "notset" else "WARNING",
        format="%(asctime)s %(levelname)s %(name)s[shadow]: %(message)s",
        stream=sys.stderr,
    )
    import uvloop

    uvloop.run(_Child(settings_mod.from_child_args(args)).run(args.fd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
