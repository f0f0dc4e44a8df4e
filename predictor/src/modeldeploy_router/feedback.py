"""Ground-truth feedback through the router: fan out, merge (docs/router.md, Feedback).

The router does not remember predictions: it would have to parse every answer
on its event loop, and a feedback may reach another router replica than the
prediction did. The predictor pod that answered keeps `request id ->
prediction` and judges the outcome; the router sends each feedback request to
every ready pod of every track it routes to, and merges the answers: an
outcome is recorded when some pod knew its request id. Feedback is rare next
to predictions, and the pod count is small, so the fan-out is cheap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from modeldeploy_router import routing
from modeldeploy_router.upstream import Buffered, Upstream, UpstreamError

PREFIX = b"/v2/models/"
SUFFIX = b"/feedback"
ANSWER_LIMIT = 4 << 20
RESULTS = ("recorded", "invalid", "unknown")  # strongest first: any pod that knew the id wins


def is_feedback(method: str, path: bytes) -> bool:
    return method == "POST" and path.startswith(PREFIX) and path.endswith(SUFFIX)


class TooLarge(Exception):
    pass


async def read_body(receive: Callable[[], Any], limit: int) -> bytes | None:
    """The whole request body (None when the client went away)."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)


def merge(answers: Iterable[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Per outcome, the strongest result any pod gave, and the tracks that recorded it.

    `answers` are (track, pod answer body); every pod got the same outcomes in
    the same order, so they line up by index."""
    merged: list[dict[str, Any]] = []
    for track, doc in answers:
        for i, item in enumerate(doc.get("outcomes") or ()):
            if i == len(merged):
                merged.append({"request_id": item.get("request_id"), "result": "unknown"})
            out = merged[i]
            result = item.get("result")
            if result == "recorded":
                out.setdefault("tracks", []).append(track)
            if result in RESULTS and RESULTS.index(result) < RESULTS.index(out["result"]):
                out["result"] = result
                if item.get("error"):
                    out["error"] = item["error"]
                elif result == "recorded":
                    out.pop("error", None)
    return merged


async def fan_out(
    upstream: Upstream,
    table: routing.RoutingTable,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    timeout: float,
) -> list[tuple[str, str, Buffered | UpstreamError]]:
    """POST the feedback to every endpoint of every track: (track, url, answer or error)."""
    calls = [(t.name, url) for t in table.tracks.values() for url in t.pool.urls]
    answers = await asyncio.gather(
        *(
            upstream.call(url, "POST", target, headers, body, timeout, ANSWER_LIMIT)
            for _, url in calls
        ),
        return_exceptions=True,
    )
    out: list[tuple[str, str, Buffered | UpstreamError]] = []
    for (track, url), answer in zip(calls, answers, strict=True):
        if isinstance(answer, BaseException) and not isinstance(answer, UpstreamError):
            answer = UpstreamError(f"{url}: {answer!r}")
        out.append((track, url, answer))
    return out


def combine(
    replies: list[tuple[str, str, Buffered | UpstreamError]],
) -> tuple[int, dict[str, Any]]:
    """The router's answer (status, body) from the pods' replies.

    A pod's 4xx is the client's mistake (every pod got the same body): it is
    passed on. Pods that failed are listed; when none answered, 502."""
    judged: list[tuple[str, Mapping[str, Any]]] = []
    errors: list[dict[str, str]] = []
    for track, url, reply in replies:
        if isinstance(reply, UpstreamError):
            errors.append({"track": track, "endpoint": url, "error": str(reply)})
            continue
        try:
            answer = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            answer = None
        if 400 <= reply.status < 500 and isinstance(answer, dict):
            return reply.status, answer
        if reply.status != 200 or not isinstance(answer, dict):
            errors.append({"track": track, "endpoint": url, "error": f"answered {reply.status}"})
            continue
        judged.append((track, answer))
    if not judged:
        why = "no endpoint to send feedback to" if not replies else "no endpoint took the feedback"
        return 502 if replies else 503, {"error": why, "errors": errors}
    outcomes = merge(judged)
    doc: dict[str, Any] = {
        "recorded": sum(o["result"] == "recorded" for o in outcomes),
        "outcomes": outcomes,
    }
    if errors:
        doc["errors"] = errors
    return 200, doc
