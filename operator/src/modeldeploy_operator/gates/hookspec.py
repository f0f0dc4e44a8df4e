"""Typed view of `spec.strategy.webhooks` and `spec.notifications` (pure).

Webhook types and what they do follow Flagger's where both have the type, so
that existing load testers and manual gates (e.g. Flagger's loadtester
`/gate/check`) can be pointed at a ModelDeployment unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PRE_ROLLOUT = "pre-rollout"  # before the candidate gets traffic; failures count, then roll back
ROLLOUT = "rollout"  # with every analysis run; non-2xx is a failed run
CONFIRM_PROMOTION = "confirm-promotion"  # promotion waits until every one answers 2xx
POST_ROLLOUT = "post-rollout"  # after promotion or rollback; errors only logged
ROLLBACK = "rollback"  # polled during analysis; a 2xx rolls the candidate back
EVENT = "event"  # every Event of the rollout
DEFAULT_TIMEOUT = 10.0

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Webhook:
    name: str
    type: str
    url: str
    timeout: float = DEFAULT_TIMEOUT
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Notification:
    name: str
    type: str  # webhook | slack
    url: str
    timeout: float = DEFAULT_TIMEOUT


def _seconds(text: str | None) -> float:
    # The CRD enforces the duration pattern; the same sum as spec.parse_duration.
    if not text:
        return DEFAULT_TIMEOUT
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def parse_webhooks(raw: list[dict[str, Any]] | None) -> tuple[Webhook, ...]:
    return tuple(
        Webhook(
            name=str(w["name"]),
            type=str(w["type"]),
            url=str(w["url"]),
            timeout=_seconds(w.get("timeout")),
            metadata=tuple(sorted((str(k), str(v)) for k, v in (w.get("metadata") or {}).items())),
        )
        for w in raw or ()
    )


def parse_notifications(raw: list[dict[str, Any]] | None) -> tuple[Notification, ...]:
    return tuple(
        Notification(
            name=str(n["name"]),
            type=str(n.get("type", "webhook")),
            url=str(n["url"]),
            timeout=_seconds(n.get("timeout")),
        )
        for n in raw or ()
    )


def of_type(hooks: tuple[Webhook, ...], type_: str) -> tuple[Webhook, ...]:
    return tuple(h for h in hooks if h.type == type_)
