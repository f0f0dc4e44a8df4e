"""The router's request handler, an ASGI app: choose a track, forward, mirror.

Request bodies are streamed to the upstream as the client sends them and
answers streamed back as the upstream sends them, so a connection holds at
most a read buffer of either (server.py pauses a connection's reading while
its request is in flight). Only a copy that is mirrored keeps its bodies, up
to `mirror_queue_bytes`.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from modeldeploy_router import feedback, routing, shadow, shadow_process
from modeldeploy_router import metrics as metrics_mod
from modeldeploy_router.settings import Settings
from modeldeploy_router.upstream import (
    Answer,
    NotSent,
    Upstream,
    UpstreamError,
    forwardable,
)

log = logging.getLogger(__name__)

TRACK_HEADER = b"x-modeldeploy-track"
MIRRORED_METHODS = frozenset({"POST"})
LOCAL_PATHS = frozenset({b"/healthz", b"/readyz", b"/metrics"})
# Never copied from an upstream answer: framing and connection fields are the
# server's, and the request id is the router's.
DROP_RESPONSE = frozenset(
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
        b"x-request-id",
    }
)
NO_BODY_STATUS = frozenset({204, 304})
JSON = (b"content-type", b"application/json")

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict], Any]


class TableSource:
    """Where the routing table comes from (static flags or the Kubernetes API)."""

    async def start(self, apply: Callable[[routing.RoutingTable], None]) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        return None


class ClientGone(Exception):
    """The client disconnected while its request body was being read."""


class BodyTooLarge(Exception):
    pass


class Aborted(Exception):
    """The upstream failed after the answer had started: the client connection
    is dropped (server.py keeps this out of the error log)."""


class _Body:
    """A request body read from the server while the upstream takes it; keeps
    a copy (for the shadow) while it stays under `keep_limit` bytes."""

    def __init__(self, receive: Receive, first: bytes, limit: int, keep_limit: int) -> None:
        self.receive = receive
        self.first = first
        self.limit = limit
        self.keep_limit = keep_limit
        self.kept: list[bytes] | None = [first] if keep_limit and len(first) <= keep_limit else None
        self.size = len(first)
        self.started = False
        # why reading stopped: the upstream client reports it as its own
        # send failure, so the proxy looks here first
        self.failure: BodyTooLarge | ClientGone | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        self.started = True
        if self.first:
            yield self.first
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.failure = ClientGone()
                raise self.failure
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if self.size > self.limit:
                self.failure = BodyTooLarge()
                raise self.failure
            if self.kept is not None:
                if self.size <= self.keep_limit:
                    self.kept.append(chunk)
                else:
                    self.kept = None
            if chunk:
                yield chunk
            if not message.get("more_body"):
                return

    def copy(self) -> bytes | None:
        return None if self.kept is None else b"".join(self.kept)


class Router:
    """The ASGI app. `table` is swapped whole by the source; each request reads
    it once."""

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
            self.mirror = shadow.Mirror(
                self.upstream,
                self.metrics,
                settings,
                current_shadow=lambda: self.table.tracks.get(routing.SHADOW),
            )
        else:
            self.mirror = shadow_process.ShadowProcess(settings)
        self._rand = random.Random(settings.seed).random
        self._ids = random.Random(os.urandom(32))
        self._sticky = settings.sticky_header.lower().encode("latin-1")
        self._fallback_logged: set[tuple[str, str | None]] = set()
        self.draining = False  # /readyz answers 503 and answers close their connection

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
        await self.mirror.start()
        await self.source.start(self.apply)

    async def stop(self) -> None:
        await self.source.stop()
        await self.mirror.stop()
        await self.upstream.close()

    # -- answering -------------------------------------------------------
    async def _reply(
        self, send: Send, status: int, doc: dict, headers: list[tuple[bytes, bytes]]
    ) -> None:
        body = orjson.dumps(doc)
        out = [JSON, (b"content-length", str(len(body)).encode()), *headers]
        if self.draining:
            out.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    async def _local(self, path: bytes, send: Send) -> None:
        if path == b"/healthz":
            await self._reply(send, 200, {"status": "ok"}, [])
        elif path == b"/readyz":
            table = self.table
            if self.draining:
                await self._reply(send, 503, {"status": "not ready", "error": "shutting down"}, [])
            elif table.ready:
                await self._reply(send, 200, {"status": "ready"}, [])
            else:
                doc = {"status": "not ready", "error": _no_stable(table)}
                await self._reply(send, 503, doc, [])
        else:
            try:
                body = self.metrics.exposition() + await self.mirror.exposition()
            except Exception:
                log.exception("metrics exposition failed")
                await self._reply(send, 500, {"error": "metrics exposition failed"}, [])
                return
            headers = [
                (b"content-type", METRICS_CONTENT_TYPE),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["raw_path"]
        if path in LOCAL_PATHS:
            await self._local(path, send)
            return
        if feedback.is_feedback(scope["method"], path):
            await self._feedback(scope, receive, send)
            return
        request_id = sticky_key = override = None
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
            elif name == self._sticky:
                sticky_key = value.decode("latin-1")
            elif name == TRACK_HEADER:
                override = value.decode("latin-1").strip().lower()
            elif name == b"content-length":
                length = int(value)  # the server has checked it is one number
        rid = (b"x-request-id", request_id or b"%032x" % self._ids.getrandbits(128))
        exchange = _Exchange(self, scope, receive, send, rid, request_id is None)
        try:
            await exchange.run(sticky_key, override, length)
        except ClientGone:
            return  # nobody to answer
        except Aborted:
            raise
        except Exception:
            log.exception("failed to answer %s %r", scope["method"], path)
            if exchange.head_sent:
                raise Aborted from None
            await self._reply(send, 500, {"error": "internal router error"}, [rid])

    async def _feedback(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Outcomes go to every pod; the one that made the prediction judges it
        (feedback.py). The x-request-id header here names the prediction."""
        table, model = self.table, self.table.model
        try:
            body = await feedback.read_body(receive, self.settings.max_body_bytes)
        except feedback.TooLarge:
            limit = self.settings.max_body_bytes
            await self._reply(send, 413, {"error": f"request body exceeds {limit} bytes"}, [])
            return
        if body is None:
            return
        query = scope["query_string"]
        target = scope["raw_path"] + (b"?" + query if query else b"")
        replies = await feedback.fan_out(
            self.upstream, table, target, forwardable(scope["headers"]), body, self.settings.timeout
        )
        status, doc = feedback.combine(replies)
        self.metrics.feedback_answered(
            model, status, doc.get("outcomes") or (), doc.get("errors") or ()
        )
        await self._reply(send, status, doc, [])

    def note_fallback(self, model: str, wanted: str, used: str | None, why: str) -> None:
        if used is not None:
            self.metrics.fell_back(model, wanted, used)
        if (wanted, used) not in self._fallback_logged:
            self._fallback_logged.add((wanted, used))
            log.warning("track %s %s; sending its traffic to %s", wanted, why, used or "nobody")


class _Exchange:
    """One forwarded request."""

    def __init__(
        self,
        router: Router,
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: tuple[bytes, bytes],
        new_id: bool,
    ) -> None:
        self.router = router
        self.scope = scope
        self.receive = receive
        self.send = send
        self.rid = rid
        self.new_id = new_id
        self.table = router.table
        self.started = time.perf_counter()
        self.head_sent = False
        query = scope["query_string"]
        self.target = scope["raw_path"] + (b"?" + query if query else b"")

    async def fail(self, status: int, message: str, track: routing.Track | None) -> None:
        self.router.metrics.observe_request(self.table.model, track, status)
        headers = [self.rid]
        doc: dict[str, str] = {"error": message}
        if track is not None:
            headers.append((TRACK_HEADER, track.name.encode()))
            doc["track"] = track.name
        self.head_sent = True
        await self.router._reply(self.send, status, doc, headers)

    async def run(self, sticky_key: str | None, override: str | None, length: int | None) -> None:
        router, table, settings = self.router, self.table, self.router.settings
        if override is not None and settings.allow_track_override:
            if override not in routing.TRACKS:
                allowed = ", ".join(routing.TRACKS)
                msg = f"x-modeldeploy-track must be one of {allowed}, got {override!r}"
                await self.fail(400, msg, None)
                return
            wanted = override
        else:
            wanted = routing.choose_primary(table.canary_weight, sticky_key, router._rand)
        decision = routing.resolve(table, wanted)
        if decision.fell_back_from is not None:
            router.note_fallback(
                table.model, decision.fell_back_from, decision.track, "has no ready endpoints"
            )
        if decision.track is None:
            await self.fail(503, _no_stable(table), None)
            return
        track = table.tracks[decision.track]

        method = self.scope["method"]
        shadow_track = table.tracks.get(routing.SHADOW)
        mirrored = (
            method in MIRRORED_METHODS
            and track.name != routing.SHADOW
            and shadow_track is not None
            and routing.should_mirror(table.mirror_percent, router._rand)
        )
        message = await self.receive()
        if message["type"] == "http.disconnect":
            return
        first = message.get("body", b"")
        if len(first) > settings.max_body_bytes:  # chunked: no length to refuse it by earlier
            await self.fail(413, f"request body exceeds {settings.max_body_bytes} bytes", None)
            return
        body: bytes | _Body
        if not message.get("more_body"):
            body = first
            length = len(first)
        else:
            keep = settings.mirror_queue_bytes if mirrored else 0
            body = _Body(self.receive, first, settings.max_body_bytes, keep)
        headers = forwardable(self.scope["headers"])
        if self.new_id:
            headers.append(self.rid)

        answer = await self._send(track, headers, body, length)
        if answer is None:
            return
        track, upstream = answer
        await self._relay(track, upstream, mirrored, body, headers)

    async def _send(
        self,
        track: routing.Track,
        headers: list[tuple[bytes, bytes]],
        body: bytes | _Body,
        length: int | None,
    ) -> tuple[routing.Track, Answer] | None:
        """Open the exchange; one retry when the request provably never left:
        on another endpoint of the track, else on the other primary track when
        that one serves users (docs/router.md, Failures)."""
        router, table = self.router, self.table
        url = track.pool.pick()
        assert url is not None, "routing.resolve picks only a track with endpoints"
        retried = False
        while True:
            try:
                upstream = await router.upstream.open(
                    url, self.scope["method"], self.target, headers, body, length
                )
            except NotSent as exc:
                log.warning("%s endpoint %s: %s", track.name, url, exc)
                sent = isinstance(body, _Body) and body.started
                if retried or sent:
                    await self.fail(502, f"no {track.name} endpoint could be reached", track)
                    return None
                retried = True
                other = track.pool.pick(exclude=url)
                if other is None or other == url:
                    to = routing.other_track(table, track.name)
                    if to is None:
                        await self.fail(502, f"no {track.name} endpoint could be reached", track)
                        return None
                    router.note_fallback(table.model, track.name, to, "refused a connection")
                    track = table.tracks[to]
                    other = track.pool.pick()
                assert other is not None, "other_track has ready endpoints"
                url = other
                continue
            except (BodyTooLarge, ClientGone, UpstreamError) as exc:
                failure = body.failure if isinstance(body, _Body) else None
                if isinstance(failure or exc, ClientGone):
                    raise ClientGone from None
                if isinstance(failure or exc, BodyTooLarge):
                    limit = router.settings.max_body_bytes
                    await self.fail(413, f"request body exceeds {limit} bytes", None)
                    return None
                status = exc.status if isinstance(exc, UpstreamError) else 502
                await self.fail(status, f"{track.name} endpoint {url}: {exc}", track)
                return None
            if upstream.status < 200:
                await upstream.close()
                msg = f"{track.name} endpoint {url} answered {upstream.status}, not a final answer"
                await self.fail(502, msg, track)
                return None
            return track, upstream

    async def _relay(
        self,
        track: routing.Track,
        upstream: Answer,
        mirrored: bool,
        body: bytes | _Body,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        router, send = self.router, self.send
        status = upstream.status
        out = [(k, v) for k, v in upstream.headers if k.lower() not in DROP_RESPONSE]
        if status not in NO_BODY_STATUS:
            length = next((v for k, v in upstream.headers if k.lower() == b"content-length"), None)
            if length is not None:
                out.append((b"content-length", length))
        out.append(self.rid)
        out.append((TRACK_HEADER, track.name.encode()))
        if router.draining:
            out.append((b"connection", b"close"))
        keep = router.settings.mirror_queue_bytes if mirrored else 0
        kept: list[bytes] | None = [] if keep else None
        size = 0
        try:
            self.head_sent = True
            await send({"type": "http.response.start", "status": status, "headers": out})
            async for chunk in upstream.chunks():
                if kept is not None:
                    size += len(chunk)
                    if size <= keep:
                        kept.append(chunk)
                    else:
                        kept = None
                if upstream.at_end():
                    break  # the last part goes with the end (a small answer: one message)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            else:
                chunk = b""
            upstream_s = time.perf_counter() - upstream.started
            await send({"type": "http.response.body", "body": chunk})
        except (Aborted, ClientGone):
            raise
        except Exception as exc:  # the upstream broke off: the client sees a cut answer
            log.warning("%s endpoint answer broken off: %r", track.name, exc)
            router.metrics.observe_request(self.table.model, track, 502)
            raise Aborted from None
        finally:
            await upstream.close()
        overhead = time.perf_counter() - self.started - upstream_s
        router.metrics.observe_answer(self.table.model, track, status, upstream_s, overhead)
        if mirrored:
            self._mirror(track, status, body, headers, kept)

    def _mirror(
        self,
        track: routing.Track,
        status: int,
        body: bytes | _Body,
        headers: list[tuple[bytes, bytes]],
        kept: list[bytes] | None,
    ) -> None:
        table = self.table
        shadow_track = table.tracks.get(routing.SHADOW)
        request = body if isinstance(body, bytes) else body.copy()
        if shadow_track is None or request is None or kept is None:
            self.router.mirror.dropped_too_large(table.model)
            return
        self.router.mirror.submit(
            shadow.Copy(
                model=table.model,
                shadow=shadow_track,
                primary_version=track.version,
                method=self.scope["method"],
                path_qs=self.target.decode("latin-1"),
                headers=headers,
                body=request,
                primary_status=status,
                primary_body=b"".join(kept),
            )
        )


METRICS_CONTENT_TYPE = metrics_mod.CONTENT_TYPE.encode()


def _no_stable(table: routing.RoutingTable) -> str:
    if routing.STABLE not in table.tracks:
        return "no stable track configured (routing not written yet)"
    return "no track with ready endpoints serves users (stable has none)"


def _summary(table: routing.RoutingTable) -> str:
    tracks = ", ".join(
        f"{t.name}={t.version or '-'}[{len(t.pool)} endpoints]" for t in table.tracks.values()
    )
    return (
        f"model={table.model} canaryWeight={table.canary_weight:g} "
        f"mirrorPercent={table.mirror_percent:g} tracks: {tracks or 'none'}"
    )
