"""The built-in load generator's request, parsed (pure; I/O in loadgen.py).

A webhook (`pre-rollout` or `rollout`) whose `url` is the operator's
`/loadtest` endpoint asks for load on the candidate: the webhook body names
the ModelDeployment, model and candidate revision (gates/payload.py), its
`metadata` holds strings, as Flagger's load tester reads them:

- `rate`: requests per second (default "10", at most 1000);
- `duration`: how long, e.g. "1m" (default "1m", at most "1h"); a call while
  a load on the same revision runs extends it;
- `batch`: validation rows per request (default "1").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy_operator import spec

MAX_RATE = 1000.0
MAX_DURATION = 3600.0
MAX_BATCH = 1000


class LoadSpecError(ValueError):
    """A request the load generator refuses (the caller's 400)."""


@dataclass(frozen=True)
class LoadJob:
    namespace: str
    name: str  # the ModelDeployment
    model: str
    revision: str  # the candidate's pods receive the load
    rate: float
    duration: float
    batch: int

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.revision


def _text(doc: Mapping[str, Any], field: str) -> str:
    value = doc.get(field)
    if not isinstance(value, str) or not value:
        raise LoadSpecError(f"{field}: expected a non-empty string, got {value!r:.60}")
    return value


def _number(meta: Mapping[str, Any], field: str, default: str, low: float, high: float) -> float:
    raw = meta.get(field, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise LoadSpecError(f"metadata.{field}: expected a number, got {raw!r:.40}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise LoadSpecError(f"metadata.{field}: expected {low:g} to {high:g}, got {raw!r:.40}")
    return value


def parse_request(doc: Any) -> LoadJob:
    """The webhook body -> what to load; LoadSpecError names the bad field."""
    if not isinstance(doc, Mapping):
        raise LoadSpecError("expected the JSON object of a modeldeploy webhook call")
    meta = doc.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise LoadSpecError("metadata: expected an object of strings")
    raw_duration = meta.get("duration", "1m")
    try:
        duration = spec.parse_duration(str(raw_duration))
    except ValueError as exc:
        raise LoadSpecError(f"metadata.duration: {exc}") from None
    if not 0 < duration <= MAX_DURATION:
        raise LoadSpecError(
            f"metadata.duration: expected more than 0s and at most 1h, got {raw_duration!r}"
        )
    batch = _number(meta, "batch", "1", 1, MAX_BATCH)
    if batch != int(batch):
        raise LoadSpecError(f"metadata.batch: expected a whole number, got {meta.get('batch')!r}")
    return LoadJob(
        namespace=_text(doc, "namespace"),
        name=_text(doc, "name"),
        model=_text(doc, "model"),
        revision=_text(doc, "revision"),
        rate=_number(meta, "rate", "10", 0.1, MAX_RATE),
        duration=duration,
        batch=int(batch),
    )


def ready_urls(pods: list[dict[str, Any]], port: int) -> list[str]:
    """Base URLs of the Ready, not terminating pods (API camelCase dicts)."""
    urls = []
    for pod in pods:
        st = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in st.get("conditions") or []
        )
        if ready and st.get("podIP") and not (pod.get("metadata") or {}).get("deletionTimestamp"):
            host = st["podIP"]
            urls.append(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")
    return sorted(urls)


def batches(rows: list[Any], size: int) -> list[list[Any]]:
    """The validation rows cut into requests of `size` rows (replayed in a cycle)."""
    return [rows[i : i + size] for i in range(0, len(rows), size)]
