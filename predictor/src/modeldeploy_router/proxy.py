"""The router's request handler: choose a track, forward, mirror.

`Router.handle` takes a parsed request from the front end (frontend.py) and
returns the reply. Bodies are buffered (predictor requests and answers are
bounded JSON): that lets a request be retried on another endpoint and the
primary answer be compared with the shadow's.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from modeldeploy_router import metrics as metrics_mod
from modeldeploy_router import routing, shadow, shadow_process
from modeldeploy_router.frontend import Reply, Request
from modeldeploy_router.upstream import (
    HOP_BY_HOP,
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


class UpstreamFailed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Router:
    """`table` is swapped whole by the source; each request reads it once."""

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
        self.draining = False  # /readyz answers 503 while the server drains

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

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        await self.upstream.start()
        await self.mirror.start()
        await self.source.start(self.apply)

    async def stop(self) -> None:
        await self.source.stop()
        await self.mirror.stop()
        await self.upstream.close()

    # -- requests --------------------------------------------------------
    async def _local(self, path: bytes) -> Reply | None:
        """The router's own endpoints; None when `path` is not one of them."""
        if path == b"/healthz":
            return Reply.json(200, {"status": "ok"})
        if path == b"/readyz":
            table = self.table
            if self.draining:
                return Reply.json(503, {"status": "not ready", "error": "shutting down"})
            if table.ready:
                return Reply.json(200, {"status": "ready"})
            return Reply.json(503, {"status": "not ready", "error": _no_stable(table)})
        if path == b"/metrics":
            body = self.metrics.exposition() + await self.mirror.exposition()
            return Reply(200, [(b"content-type", METRICS_CONTENT_TYPE)], body)
        return None

    async def handle(self, req: Request) -> Reply:
        if req.path in LOCAL_PATHS:
            local = await self._local(req.path)
            if local is not None:
                return local
        started = time.perf_counter()
        table = self.table
        model = table.model
        request_id = None
        sticky_key = None
        override = None
        headers = []  # what goes upstream: all but the hop-by-hop headers
        for name, value in req.headers:
            if name in HOP_BY_HOP:
                if name == b"connection":  # it may name more headers to drop: rare
                    headers = forwardable(req.headers)
                    break
                continue
            headers.append((name, value))
        for name, value in req.headers:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == self._sticky:
                sticky_key = value.decode("latin-1")
            elif name == b"x-modeldeploy-track":
                override = value.decode("latin-1").strip().lower()
        incoming_id = request_id
        request_id = request_id or os.urandom(16).hex()  # as unique as uuid4, cheaper
        rid_header = (b"x-request-id", request_id.encode("latin-1"))
        if req.body_too_large:
            limit = self.settings.max_body_bytes
            return Reply.json(413, {"error": f"request body exceeds {limit} bytes"}, [rid_header])

        if override is not None and self.settings.allow_track_override:
            if override not in routing.TRACKS:
                msg = f"{TRACK_HEADER} must be one of {', '.join(routing.TRACKS)}, got {override!r}"
                return Reply.json(400, {"error": msg}, [rid_header])
            wanted = override
        else:
            wanted = routing.choose_primary(table.canary_weight, sticky_key, self._rand)
        track = table.tracks.get(wanted)
        if track is None or not track.pool:
            decision = routing.resolve(table, wanted)
            if decision.fell_back_from is not None:
                self._note_fallback(model, decision.fell_back_from, decision.track)
            if decision.track is None:
                self.metrics.observe_request(model, None, 503, None)
                return Reply.json(503, {"error": _no_stable(table)}, [rid_header])
            track = table.tracks[decision.track]

        method = req.method
        path_qs = req.target.decode("latin-1")
        if incoming_id is None:
            headers.append(rid_header)
        body = req.body
        try:
            resp = await self._forward(track, method, path_qs, headers, body)
        except UpstreamFailed as exc:
            self.metrics.observe_request(model, track, exc.status, None)
            return Reply.json(
                exc.status,
                {"error": str(exc), "track": track.name},
                [rid_header, (b"x-modeldeploy-track", track.name.encode())],
            )
        drop = _DROP_RESPONSE if method != "HEAD" else _DROP_RESPONSE_TO_HEAD
        out = [(k, v) for k, v in resp.headers if k.lower() not in drop]
        out.append(rid_header)
        out.append((b"x-modeldeploy-track", track.name.encode()))
        overhead = time.perf_counter() - started - resp.seconds
        self.metrics.observe_answer(model, track, resp.status, resp.seconds, overhead)

        if method in MIRRORED_METHODS and track.name != routing.SHADOW:
            self._maybe_mirror(table, track, method, path_qs, headers, body, resp)
        return Reply(resp.status, out, resp.body)

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
        b"x-request-id",  # replaced by the router's, which is the upstream's when it echoes
    }
)
# A HEAD answer has no body, so its content-length is the upstream's, kept.
_DROP_RESPONSE_TO_HEAD = _DROP_RESPONSE - {b"content-length"}
LOCAL_PATHS = frozenset({b"/healthz", b"/readyz", b"/metrics"})
METRICS_CONTENT_TYPE = metrics_mod.CONTENT_TYPE.encode()


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
