"""The router's request handler: choose a track, forward, mirror.

`Router.handle` takes a parsed request from the front end (frontend.py) and
returns the reply. Bodies are buffered (predictor requests and answers are
bounded JSON): that lets a request be retried on another endpoint and the
primary answer be compared with the shadow's.
"""

from __future__ import annotations

import asyncio
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


Respond = Callable[[Reply], None]


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
        self._ids = random.Random(os.urandom(32))
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
    def _local(self, path: bytes, respond: Respond) -> bool:
        """Answer the router's own endpoints; False when `path` is not one of them."""
        if path == b"/healthz":
            respond(Reply.json(200, {"status": "ok"}))
        elif path == b"/readyz":
            table = self.table
            if self.draining:
                respond(Reply.json(503, {"status": "not ready", "error": "shutting down"}))
            elif table.ready:
                respond(Reply.json(200, {"status": "ready"}))
            else:
                respond(Reply.json(503, {"status": "not ready", "error": _no_stable(table)}))
        elif path == b"/metrics":
            asyncio.get_running_loop().create_task(self._metrics(respond))
        else:
            return False
        return True

    async def _metrics(self, respond: Respond) -> None:
        try:
            body = self.metrics.exposition() + await self.mirror.exposition()
        except Exception:
            log.exception("metrics exposition failed")
            respond(Reply.json(500, {"error": "metrics exposition failed"}))
            return
        respond(Reply(200, [(b"content-type", METRICS_CONTENT_TYPE)], body))

    def handle(self, req: Request, respond: Respond) -> None:
        """Route `req` and call `respond(reply)` once, now or when the upstream
        answers. Callback-driven on purpose: no Task per request (frontend.py)."""
        if req.path in LOCAL_PATHS and self._local(req.path, respond):
            return
        started = time.perf_counter()
        table = self.table
        model = table.model
        request_id = None
        sticky_key = None
        override = None
        for name, value in req.headers:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == self._sticky:
                sticky_key = value.decode("latin-1")
            elif name == b"x-modeldeploy-track":
                override = value.decode("latin-1").strip().lower()
        incoming_id = request_id
        # 128 random bits like uuid4, from a generator seeded from os.urandom:
        # no system call per request
        request_id = request_id or f"{self._ids.getrandbits(128):032x}"
        rid_header = (b"x-request-id", request_id.encode("latin-1"))
        if req.body_too_large:
            limit = self.settings.max_body_bytes
            msg = f"request body exceeds {limit} bytes"
            respond(Reply.json(413, {"error": msg}, [rid_header]))
            return

        if override is not None and self.settings.allow_track_override:
            if override not in routing.TRACKS:
                msg = f"{TRACK_HEADER} must be one of {', '.join(routing.TRACKS)}, got {override!r}"
                respond(Reply.json(400, {"error": msg}, [rid_header]))
                return
            wanted = override
        else:
            wanted = routing.choose_primary(table.canary_weight, sticky_key, self._rand)
        track = table.tracks.get(wanted)
        if track is None or not track.pool.urls:
            decision = routing.resolve(table, wanted)
            if decision.fell_back_from is not None:
                self._note_fallback(model, decision.fell_back_from, decision.track)
            if decision.track is None:
                self.metrics.observe_request(model, None, 503)
                respond(Reply.json(503, {"error": _no_stable(table)}, [rid_header]))
                return
            track = table.tracks[decision.track]

        headers = forwardable(req.headers)
        if incoming_id is None:
            headers.append(rid_header)
        forward = _Forward(self, table, track, req, headers, rid_header, started, respond)
        forward.send(track.pool.pick())

    def _answer(self, fwd: _Forward, resp: Response) -> Reply:
        """The reply to a forwarded request the upstream answered."""
        drop = _DROP_RESPONSE if fwd.req.method != "HEAD" else _DROP_RESPONSE_TO_HEAD
        out = [(k, v) for k, v in resp.headers if k.lower() not in drop]
        out.append(fwd.rid_header)
        out.append((b"x-modeldeploy-track", fwd.track.name.encode()))
        return Reply(resp.status, out, resp.body)

    def _record(self, fwd: _Forward, resp: Response, replied: float) -> None:
        """Metrics and the shadow copy of an answered request: after the reply
        is written, so the client does not wait for them."""
        track = fwd.track
        overhead = replied - fwd.started - resp.seconds
        self.metrics.observe_answer(fwd.table.model, track, resp.status, resp.seconds, overhead)
        if fwd.req.method in MIRRORED_METHODS and track.name != routing.SHADOW:
            self._maybe_mirror(fwd, resp)

    def _failed(self, fwd: _Forward, status: int, message: str) -> Reply:
        track = fwd.track
        self.metrics.observe_request(fwd.table.model, track, status)
        return Reply.json(
            status,
            {"error": message, "track": track.name},
            [fwd.rid_header, (b"x-modeldeploy-track", track.name.encode())],
        )

    def _maybe_mirror(self, fwd: _Forward, resp: Response) -> None:
        table = fwd.table
        shadow_track = table.tracks.get(routing.SHADOW)
        if shadow_track is None or not routing.should_mirror(table.mirror_percent, self._rand):
            return
        req = fwd.req
        self.mirror.submit(
            shadow.Copy(
                model=table.model,
                shadow=shadow_track,
                primary_version=fwd.track.version,
                method=req.method,
                path_qs=fwd.path_qs,
                headers=fwd.headers,
                body=req.body,
                primary_status=resp.status,
                primary_body=resp.body,
            )
        )

    def _note_fallback(self, model: str, wanted: str, used: str | None) -> None:
        if used is not None:
            self.metrics.fell_back(model, wanted)
        if wanted not in self._fallback_logged:
            self._fallback_logged.add(wanted)
            log.warning("track %s has no ready endpoints; sending its traffic to stable", wanted)


class _Forward:
    """One request on its way to `track`: on a connection error it is retried
    once on another endpoint of the same track (never the other track, so a
    broken canary stays visible to the analysis)."""

    __slots__ = (
        "attempt",
        "headers",
        "path_qs",
        "req",
        "respond",
        "rid_header",
        "router",
        "started",
        "table",
        "track",
        "url",
    )

    def __init__(
        self,
        router: Router,
        table: routing.RoutingTable,
        track: routing.Track,
        req: Request,
        headers: list[tuple[bytes, bytes]],
        rid_header: tuple[bytes, bytes],
        started: float,
        respond: Respond,
    ) -> None:
        self.router = router
        self.table = table
        self.track = track
        self.req = req
        self.headers = headers
        self.rid_header = rid_header
        self.started = started
        self.respond = respond
        self.path_qs = req.target.decode("latin-1")  # for every attempt and the shadow copy
        self.url: str | None = None
        self.attempt = 0

    def send(self, url: str | None) -> None:
        if url is None:
            self.respond(
                self.router._failed(self, 502, f"no {self.track.name} endpoint could be reached")
            )
            return
        self.url = url
        self.attempt += 1
        req = self.req
        self.router.upstream.send(
            url,
            req.method,
            self.path_qs,
            self.headers,
            req.body,
            self._upstream_done,
        )

    def _upstream_done(self, resp: Response | None, exc: BaseException | None) -> None:
        try:
            reply = self._reply(resp, exc)
        except Exception:
            log.exception("failed to answer %s %r", self.req.method, self.req.target)
            reply = Reply.json(500, {"error": "internal router error"}, [self.rid_header])
        if reply is None:  # retried on another endpoint
            return
        self.respond(reply)
        if exc is None:
            try:  # after the reply: respond() may already serve the next request
                self.router._record(self, resp, time.perf_counter())
            except Exception:
                log.exception("recording %s %r failed", self.req.method, self.req.target)

    def _reply(self, resp: Response | None, exc: BaseException | None) -> Reply | None:
        router, track, url = self.router, self.track, self.url
        if exc is None:
            return router._answer(self, resp)
        if isinstance(exc, TimeoutError):
            return router._failed(self, 504, f"{track.name} endpoint {url} timed out")
        if isinstance(exc, UpstreamConnectionError):
            log.warning("%s endpoint %s: %s (attempt %d)", track.name, url, exc, self.attempt)
            retry = track.pool.pick(exclude=url) if self.attempt == 1 else None
            self.send(retry if retry != url else None)
            return None
        if isinstance(exc, UpstreamProtocolError):
            return router._failed(self, 502, f"{track.name} endpoint {url}: {exc}")
        raise exc


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
