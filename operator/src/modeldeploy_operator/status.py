"""`status` of a ModelDeployment as one typed, frozen value.

Converted at the API boundary only: :meth:`Status.from_api` where the object
comes in (reconcile.py, plugin.py) and :meth:`Status.to_api` where the status
patch is computed. The state machine (rollout/) takes and returns
:class:`Status` and changes it with :func:`dataclasses.replace`.

Conventions of the conversion, chosen so a status written by an earlier
operator loads and the status patch stays minimal:

- ``to_api`` never writes ``null``: a field that is None is left out, and the
  merge patch (kube.merge_patch) deletes a key the new status no longer has.
- counters missing from an older status read as 0 and are written back as 0;
- top-level keys this module does not know (fields of a newer operator) are
  kept in ``extra`` and written back unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _flat_from(cls: type[T], doc: Mapping[str, Any] | None) -> T | None:
    """A flat dataclass from its camelCase API dict (missing keys take the defaults)."""
    if not doc:
        return None
    names = {_camel(f.name): f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    # null is absent (a merge patch deletes with it): the default applies
    return cls(**{names[k]: v for k, v in doc.items() if k in names and v is not None})


def _flat_list(cls: type[T], docs: list[Mapping[str, Any]] | None) -> tuple[T, ...]:
    found = (_flat_from(cls, d) for d in docs or ())
    return tuple(x for x in found if x is not None)


def _flat_to(obj: Any) -> dict[str, Any]:
    return {
        _camel(f.name): getattr(obj, f.name)
        for f in dataclasses.fields(obj)
        if getattr(obj, f.name) is not None
    }


@dataclass(frozen=True)
class Ref:
    """A revision of the model: stable or candidate."""

    version: str = ""
    revision: str = ""
    digest: str | None = None
    uri: str | None = None


@dataclass(frozen=True)
class Paused:
    reason: str = "Unknown"
    message: str = ""
    since: str | None = None


@dataclass(frozen=True)
class Degraded:
    reason: str = "Unknown"
    message: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    version: str = ""
    revision: str = ""
    result: str = ""  # Promoted | RolledBack | Superseded
    reason: str = ""
    message: str = ""
    time: str = ""


@dataclass(frozen=True)
class Condition:
    type: str = ""
    status: str = ""  # "True" | "False"
    reason: str = ""
    message: str = ""
    observed_generation: int = 0
    last_transition_time: str = ""


@dataclass(frozen=True)
class Analysis:
    """Counters of the current stage and the last measurements (their shape is verdicts.py's)."""

    passes: int = 0
    requests: int = 0
    failures: int = 0
    inconclusive: int = 0
    last_run_at: str | None = None
    measurements: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_api(cls, doc: Mapping[str, Any] | None) -> Analysis:
        doc = doc or {}
        return cls(
            passes=int(doc.get("passes") or 0),
            requests=int(doc.get("requests") or 0),
            failures=int(doc.get("failures") or 0),
            inconclusive=int(doc.get("inconclusive") or 0),
            last_run_at=doc.get("lastRunAt"),
            measurements=tuple(doc.get("measurements") or ()),
        )

    def to_api(self) -> dict[str, Any]:
        out = _flat_to(self)
        out["measurements"] = [dict(m) for m in self.measurements]
        return out


@dataclass(frozen=True)
class PreRollout:
    state: str = "Pending"  # Pending | Passed
    message: str | None = None
    last_call_at: str | None = None


@dataclass(frozen=True)
class ConfirmPromotion:
    waiting_since: str = ""
    message: str = ""


@dataclass(frozen=True)
class Gates:
    pre_rollout: PreRollout | None = None
    confirm_promotion: ConfirmPromotion | None = None

    @classmethod
    def from_api(cls, doc: Mapping[str, Any] | None) -> Gates | None:
        if doc is None:
            return None
        return cls(
            _flat_from(PreRollout, doc.get("preRollout")),
            _flat_from(ConfirmPromotion, doc.get("confirmPromotion")),
        )

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pre_rollout is not None:
            out["preRollout"] = _flat_to(self.pre_rollout)
        if self.confirm_promotion is not None:
            out["confirmPromotion"] = _flat_to(self.confirm_promotion)
        return out


@dataclass(frozen=True)
class Validation:
    """Pre-traffic validation of the candidate (gates/validation.py)."""

    state: str = "Pending"  # Pending | Passed | Failed
    message: str | None = None
    metrics: Mapping[str, float | None] | None = None
    time: str | None = None
    attempts: int | None = None  # runs that could not run (inconclusive)

    @classmethod
    def from_api(cls, doc: Mapping[str, Any] | None) -> Validation | None:
        v = _flat_from(cls, doc)
        if v is not None and v.metrics is not None:
            v = dataclasses.replace(v, metrics=dict(v.metrics))
        return v

    def to_api(self) -> dict[str, Any]:
        out = _flat_to(self)
        if self.metrics is not None:
            out["metrics"] = dict(self.metrics)
        return out


@dataclass(frozen=True)
class Track:
    service: str = ""
    version: str = ""
    revision: str = ""


@dataclass(frozen=True)
class Traffic:
    """The routing contract the router watches (`status.traffic`)."""

    canary_weight: int = 0
    mirror_percent: int = 0
    tracks: Mapping[str, Track] = field(default_factory=dict)

    @classmethod
    def from_api(cls, doc: Mapping[str, Any] | None) -> Traffic | None:
        if doc is None:
            return None
        # a track set to null by a merge patch is a track removed
        found = {k: _flat_from(Track, v) for k, v in (doc.get("tracks") or {}).items()}
        tracks = {k: t for k, t in found.items() if t is not None}
        return cls(int(doc.get("canaryWeight", 0)), int(doc.get("mirrorPercent", 0)), tracks)

    def to_api(self) -> dict[str, Any]:
        return {
            "canaryWeight": self.canary_weight,
            "mirrorPercent": self.mirror_percent,
            "tracks": {k: _flat_to(t) for k, t in self.tracks.items()},
        }


@dataclass(frozen=True)
class Status:
    stage: str | None = None  # spec.Stage; None before the first tick
    phase: str | None = None  # spec.Phase, derived from stage and pause
    observed_generation: int | None = None
    current_step: int = 0
    stage_started_at: str | None = None
    rollout_started_at: str | None = None
    stable: Ref | None = None
    candidate: Ref | None = None
    blocked_revision: str | None = None  # rolled back: not retried until the spec changes
    analysis: Analysis | None = None
    paused: Paused | None = None
    degraded: Degraded | None = None
    gates: Gates | None = None
    validation: Validation | None = None
    history: tuple[HistoryEntry, ...] = ()
    traffic: Traffic | None = None
    canary_weight: int | None = None
    conditions: tuple[Condition, ...] = ()
    last_command_nonce: str | None = None
    # An autoscaled candidate's `promote`, held until its pods can take all traffic
    promotion_requested_at: str | None = None
    # announce.py's outbox: Events written with the transition, posted, then cleared
    pending_events: tuple[Mapping[str, Any], ...] = ()
    event_seq: int | None = None  # the last sequence number in an Event's name
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys other modules own

    @classmethod
    def from_api(cls, doc: Mapping[str, Any] | None) -> Status:
        doc = {k: v for k, v in (doc or {}).items() if k != "kopf"}
        analysis = doc.get("analysis")
        return cls(
            stage=doc.get("stage"),
            phase=doc.get("phase"),
            observed_generation=doc.get("observedGeneration"),
            current_step=int(doc.get("currentStep") or 0),
            stage_started_at=doc.get("stageStartedAt"),
            rollout_started_at=doc.get("rolloutStartedAt"),
            stable=_flat_from(Ref, doc.get("stable")),
            candidate=_flat_from(Ref, doc.get("candidate")),
            blocked_revision=doc.get("blockedRevision"),
            analysis=None if analysis is None else Analysis.from_api(analysis),
            paused=_flat_from(Paused, doc.get("paused")),
            degraded=_flat_from(Degraded, doc.get("degraded")),
            gates=Gates.from_api(doc.get("gates")),
            validation=Validation.from_api(doc.get("validation")),
            history=_flat_list(HistoryEntry, doc.get("history")),
            traffic=Traffic.from_api(doc.get("traffic")),
            canary_weight=doc.get("canaryWeight"),
            conditions=_flat_list(Condition, doc.get("conditions")),
            last_command_nonce=doc.get("lastCommandNonce"),
            promotion_requested_at=doc.get("promotionRequestedAt"),
            pending_events=tuple(doc.get("pendingEvents") or ()),
            event_seq=doc.get("eventSeq"),
            extra={k: v for k, v in doc.items() if k not in _KNOWN},
        )

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value is None:
                continue
            if f.name in ("history", "conditions"):
                if value:  # absent until the first entry, as before
                    out[_camel(f.name)] = [_flat_to(v) for v in value]
            elif f.name == "pending_events":
                if value:
                    out[_camel(f.name)] = [dict(v) for v in value]
            elif isinstance(value, Ref | Paused | Degraded):
                out[_camel(f.name)] = _flat_to(value)
            elif hasattr(value, "to_api"):
                out[_camel(f.name)] = value.to_api()
            else:
                out[_camel(f.name)] = value
        return {**out, **self.extra}


_KNOWN = {_camel(f.name) for f in dataclasses.fields(Status)} - {"extra"}
