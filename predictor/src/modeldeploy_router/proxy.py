"""The router's ASGI application: choose a track, forward, mirror.

A raw ASGI callable rather than a framework: the router has three local paths
and forwards everything else, so routing tables and request objects would only
add per-request cost. Bodies are buffered (predictor requests and answers are
bounded JSON): that lets a request be retried on another endpoint and the
primary answer be compared with the shadow's.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from modeldeploy_router import metrics as metrics_mod
from modeldeploy_router import routing, shadow, shadow_process
from modeldeploy_router.upstream import (
    Response,
    Upstream,
    UpstreamConnectionError,
    UpstreamProtocolError,
    forwardable,
)

log = logging.getLogger(__name__)

REQUEST_ID = "x-request-id"
TRACK_HEADER = "x-modeldeploy-track"
MIRRORED_METHODS = frozenset({"POST"})


@dataclass(frozen=True)
class Settings:
    model: str = ""
    sticky_header: str = "x-modeldeploy-key"
    allow_track_override: bool = False
    connect_timeout: float = 1.0
    timeout: float = 30.0
    shadow_timeout: float = 10.0
    mirror_queue: int = 1000
    mirror_concurrency: int = 32
    rel_tolerance: float = 0.01
    mirror_in_process: bool = False  # else a child process (shadow_process.py)
    max_body_bytes: int = 64 * 1024 * 1024
    seed: int | None = None


class TableSource:
    """Where the routing table comes from (static flags or the Kubernetes API)."""

    async def start(self, apply: Callable[[routing.RoutingTable], None]) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        return None


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client disconnected before its request body was complete."""


class UpstreamFailed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Send = Callable[[dict], Awaitable[None]]


async def _read_body(receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone  # never forward a truncated body
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(send: Send, status: int, doc: dict, extra: list | None = None) -> None:
    body = orjson.dumps(doc)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Router:
    """ASGI app. `table` is swapped whole by the source; requests read it once."""

    def __init__(self, settings: Settings, source: TableSource) -> None:
        self.settings = settings
        self.source = source
        inline = settings.mirror_in_process
        metrics_cls = metrics_mod.RouterMetrics
        self.metrics = metrics_cls(metrics_cls.ALL if inline else metrics_cls.PRIMARY)
        self.table = routing.RoutingTable(model=settings.model)
        self.upstream = Upstream(settings.connect_timeout, settings.timeout)
        self.mirror: shadow.Mirror | shadow_process.ShadowProcess
        if inline:
            self.mirror = shadow.Mirror.configured(
                self.upstream,
                self.metrics,
                settings,
                current_shadow=lambda: self.table.tracks.get(routing.SHADOW),
            )
        else:
            self.mirror = shadow_process.ShadowProcess(shadow_process.child_args(settings))
        self._rand = random.Random(settings.seed).random
        self._sticky = settings.sticky_header.lower().encode("latin-1")
        self._fallback_logged: set[str] = set()

    # -- routing table ---------------------------------------------------
    def apply(self, table: routing.RoutingTable) -> None:
        old = self.table
        self.table = table
        self._fallback_logged.clear()
        self.metrics.set_table(table)
        self.mirror.set_table(table)
        self.upstream.retain({url for t in table.tracks.values() for url in t.pool.urls})
        if _summary(old) != _summary(table):
            log.info("routing: %s", _summary(table))

    # -- ASGI ------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.upstream.start()
                    await self.mirror.start()
                    await self.source.start(self.apply)
                except Exception as exc:
                    log.exception("router failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.source.stop()
                await self.mirror.stop()
                await self.upstream.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _local(self, path: str, send: Send) -> bool:
        """The router's own endpoints; False when `path` is not one of them."""
        if path == "/healthz":
            await _send_json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            table = self.table
            if table.ready:
                await _send_json(send, 200, {"status": "ready"})
            else:
                await _send_json(send, 503, {"status": "not ready", "error": _no_stable(table)})
        elif path == "/metrics":
            body = self.metrics.exposition() + await self.mirror.exposition()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", metrics_mod.CONTENT_TYPE.encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
        else:
            return False
        return True

    async def _http(self, scope, receive, send: Send) -> None:
        path = scope["path"]
        if path in ("/healthz", "/readyz", "/metrics") and await self._local(path, send):
            return
        started = time.perf_counter()
        table = self.table
        model = table.model
        request_id = None
        sticky_key = None
        override = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == self._sticky:
                sticky_key = value.decode("latin-1")
            elif name == b"x-modeldeploy-track":
                override = value.decode("latin-1").strip().lower()
        request_id = request_id or os.urandom(16).hex()  # as unique as uuid4, cheaper
        rid_header = (b"x-request-id", request_id.encode("latin-1"))
        try:
            body = await _read_body(receive, self.settings.max_body_bytes)
        except ClientGone:
            return
        except BodyTooLarge:
            limit = self.settings.max_body_bytes
            await _send_json(
                send, 413, {"error": f"request body exceeds {limit} bytes"}, [rid_header]
            )
            return

        if override is not None and self.settings.allow_track_override:
            if override not in routing.TRACKS:
                msg = f"{TRACK_HEADER} must be one of {', '.join(routing.TRACKS)}, got {override!r}"
                await _send_json(send, 400, {"error": msg}, [rid_header])
                return
            wanted = override
        else:
            wanted = routing.choose_primary(table.canary_weight, sticky_key, self._rand)
        decision = routing.resolve(table, wanted)
        if decision.fell_back_from is not None:
            self._note_fallback(model, decision.fell_back_from, decision.track)
        if decision.track is None:
            self.metrics.observe_request(model, None, 503, None)
            await _send_json(send, 503, {"error": _no_stable(table)}, [rid_header])
            return
        track = table.tracks[decision.track]

        method = scope["method"]
        qs = scope.get("query_string") or b""
        raw_path = scope.get("raw_path") or path.encode()
        path_qs = (raw_path + (b"?" + qs if qs else b"")).decode("latin-1")
        headers = forwardable(scope["headers"])
        if not any(k == b"x-request-id" for k, _ in headers):
            headers.append(rid_header)

        try:
            resp = await self._forward(track, method, path_qs, headers, body)
        except UpstreamFailed as exc:
            self.metrics.observe_request(model, track, exc.status, None)
            await _send_json(
                send,
                exc.status,
                {"error": str(exc), "track": track.name},
                [rid_header, (b"x-modeldeploy-track", track.name.encode())],
            )
            return
        out = [
            (k, v)
            for k, v in resp.headers
            if k.lower() not in _DROP_RESPONSE and k.lower() != b"x-request-id"
        ]
        out.append((b"content-length", str(len(resp.body)).encode()))
        out.append(rid_header)
        out.append((b"x-modeldeploy-track", track.name.encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": out})
        await send({"type": "http.response.body", "body": resp.body})
        self.metrics.observe_request(model, track, resp.status, resp.seconds)
        self.metrics.observe_overhead(model, time.perf_counter() - started - resp.seconds)

        if method in MIRRORED_METHODS and track.name != routing.SHADOW:
            self._maybe_mirror(table, track, method, path_qs, headers, body, resp)

    def _maybe_mirror(self, table, primary, method, path_qs, headers, body, resp) -> None:
        shadow_track = table.tracks.get(routing.SHADOW)
        if shadow_track is None or not routing.should_mirror(table.mirror_percent, self._rand):
            return
        self.mirror.submit(
            shadow.Copy(
                model=table.model,
                shadow=shadow_track,
                primary_version=primary.version,
                method=method,
                path_qs=path_qs,
                headers=headers,
                body=body,
                primary_status=resp.status,
                primary_body=resp.body,
            )
        )

    async def _forward(self, track: routing.Track, method, path_qs, headers, body) -> Response:
        """Send to one endpoint of `track`; on a connection error retry once on
        another endpoint of the same track (never the other track, so a broken
        canary stays visible to the analysis)."""
        url = track.pool.pick()
        for attempt in (1, 2):
            if url is None:
                break
            try:
                return await self.upstream.call(url, method, path_qs, headers, body)
            except TimeoutError as exc:
                raise UpstreamFailed(504, f"{track.name} endpoint {url} timed out") from exc
            except UpstreamConnectionError as exc:
                log.warning("%s endpoint %s: %s (attempt %d)", track.name, url, exc, attempt)
                failed, url = url, track.pool.pick(exclude=url)
                if url is None or url == failed:
                    break
            except UpstreamProtocolError as exc:
                raise UpstreamFailed(502, f"{track.name} endpoint {url}: {exc}") from exc
        raise UpstreamFailed(502, f"no {track.name} endpoint could be reached")

    def _note_fallback(self, model: str, wanted: str, used: str | None) -> None:
        if used is not None:
            self.metrics.fell_back(model, wanted)
        if wanted not in self._fallback_logged:
            self._fallback_logged.add(wanted)
            log.warning("track %s has no ready endpoints; sending its traffic to stable", wanted)


_DROP_RESPONSE = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"date",
        b"server",
    }
)


def _no_stable(table: routing.RoutingTable) -> str:
    if routing.STABLE not in table.tracks:
        return "no stable track configured (routing not written yet)"
    return "stable track has no ready endpoints"


def _summary(table: routing.RoutingTable) -> str:
    tracks = ", ".join(
        f"{t.name}={t.version or '-'}[{len(t.pool)} endpoints]" for t in table.tracks.values()
    )
    return (
        f"model={table.model} canaryWeight={table.canary_weight:g} "
        f"mirrorPercent={table.mirror_percent:g} tracks: {tracks or 'none'}"
    )
