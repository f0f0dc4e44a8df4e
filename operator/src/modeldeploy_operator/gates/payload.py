"""JSON bodies sent to webhooks and notification receivers (pure).

The webhook body is a superset of Flagger's (`name`, `namespace`, `phase`,
`checksum`, `metadata` with string values; event hooks get `eventMessage`,
`eventType` and `timestamp` in `metadata`), so receivers written for Flagger
read it unchanged; the other fields describe the model rollout.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from modeldeploy_operator.gates.hookspec import EVENT, Webhook
from modeldeploy_operator.status import Analysis, Ref, Status

# Last measurements carried in a payload: the newest analysis run, not the history.
MAX_PAYLOAD_MEASUREMENTS = 10


def _ref(ref: Ref | None) -> dict[str, str]:
    ref = ref or Ref()
    return {"version": ref.version, "revision": ref.revision}


def hook_payload(
    hook: Webhook,
    *,
    name: str,
    namespace: str,
    model: str,
    status: Status,
    event: tuple[str, str, str] | None = None,
    now: dt.datetime,
) -> dict[str, Any]:
    """The body POSTed to `hook`; `event` is (type, reason, message) for event hooks."""
    candidate = _ref(status.candidate)
    analysis = status.analysis or Analysis()
    metadata = dict(hook.metadata)
    if hook.type == EVENT and event is not None:
        type_, reason, message = event
        metadata |= {
            "eventMessage": message,
            "eventType": type_,
            "eventReason": reason,
            "timestamp": str(int(now.timestamp() * 1000)),  # ms, as Flagger sends
        }
    return {
        "name": name,
        "namespace": namespace,
        "phase": status.phase or "",
        "checksum": candidate["revision"],
        "type": hook.type,
        "hook": hook.name,
        "model": model,
        "revision": candidate["revision"],
        "stable": _ref(status.stable),
        "candidate": candidate,
        "canaryWeight": status.canary_weight or 0,
        "step": status.current_step,
        "analysis": {
            "failures": analysis.failures,
            "inconclusive": analysis.inconclusive,
            "measurements": [dict(m) for m in analysis.measurements[-MAX_PAYLOAD_MEASUREMENTS:]],
        },
        "metadata": metadata,
    }


def notification_payload(
    *, name: str, namespace: str, status: Status, event: tuple[str, str, str], now: str
) -> dict[str, Any]:
    """Generic webhook notification: one transition."""
    type_, reason, message = event
    return {
        "name": name,
        "namespace": namespace,
        "reason": reason,
        "type": type_,
        "message": message,
        "phase": status.phase or "",
        "stable": _ref(status.stable),
        "candidate": _ref(status.candidate),
        "canaryWeight": status.canary_weight or 0,
        "time": now,
    }


def slack_payload(*, name: str, namespace: str, event: tuple[str, str, str]) -> dict[str, Any]:
    """A Slack (or Mattermost, Rocket.Chat) incoming-webhook message."""
    type_, reason, message = event
    mark = ":warning: " if type_ == "Warning" else ""
    return {"text": f"{mark}*{namespace}/{name}* {reason}: {message}"}
