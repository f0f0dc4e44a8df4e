"""Events that survive an operator restart: an outbox in `status`.

A transition's Events are written into `status.pendingEvents` by the same
status write that makes the transition, then posted, then cleared. An
operator killed between the write and the post finds them in `status` when
it starts again and posts them then. Each Event's name is derived from the
object and a sequence number kept in `status.eventSeq`, so a re-post after a
crash between posting and clearing is refused by the API server as a
duplicate (409) instead of doubling the Event.

Inconclusive analysis runs are aggregated: the runs of one streak (same
stage, no pass, failure or command in between) share one Event whose
`count` is the streak's length, as the kubelet aggregates repeated Events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from modeldeploy_operator.rollout import timing
from modeldeploy_operator.rollout.decision import Event
from modeldeploy_operator.spec import GROUP, KIND, VERSION, ModelDeployment
from modeldeploy_operator.status import Analysis, Status

PENDING = "pendingEvents"
COMPONENT = "modeldeploy-operator"
AGGREGATED = frozenset({"AnalysisInconclusive"})
# The API server keeps Event messages short; kubectl shows one line anyway.
MAX_MESSAGE = 1024


def queue(
    md: ModelDeployment,
    status: Status,
    events: Iterable[Event],
    now: dt.datetime,
) -> Status:
    """`status` with `events` added to its outbox."""
    pending = [dict(p) for p in status.pending_events]
    seq = status.event_seq or 0
    uid = md.uid[:8]
    for event in events:
        count = 1
        if event.reason in AGGREGATED:
            name = f"{md.name}.{uid}.streak-{_streak(status)}"
            count = max(1, status.analysis.inconclusive if status.analysis else 1)
            # One entry per streak in the outbox too: the newest count wins.
            pending = [p for p in pending if p["name"] != name]
        else:
            seq += 1
            name = f"{md.name}.{uid}.{seq}"
        pending.append(
            {
                "name": name,
                "type": event.type,
                "reason": event.reason,
                "message": event.message[:MAX_MESSAGE],
                "count": count,
                "time": timing.timestamp(now),
            }
        )
    return replace(status, event_seq=seq, pending_events=tuple(pending))


def _streak(status: Status) -> str:
    """Same for every inconclusive run until a pass, failure, new stage or command."""
    a = status.analysis or Analysis()
    key = "|".join(
        str(x) for x in (status.stage_started_at, a.passes, a.failures, status.last_command_nonce)
    )
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def event_body(md: ModelDeployment, entry: Mapping[str, Any]) -> dict[str, Any]:
    """A core/v1 Event about the ModelDeployment, named for idempotent posting."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": entry["name"], "namespace": md.namespace},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": md.name,
            "namespace": md.namespace,
            "uid": md.uid,
        },
        "type": entry["type"],
        "reason": entry["reason"],
        "message": entry["message"],
        "count": entry["count"],
        "firstTimestamp": entry["time"],
        "lastTimestamp": entry["time"],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
    }
