"""Typed, read-only view of a ModelDeployment and the rollout Phase enum.

The API server already validated and defaulted the object (see the CRD); this
module turns the raw dict into frozen dataclasses so the state machine and the
builders never poke into nested dicts, and repeats the defaults so that objects
built in tests (or stored before a default existed) read the same way.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"
KIND = "ModelDeployment"

BUILTIN_METRICS = (
    "error-rate",
    "latency-p99",
    "feature-drift",
    "prediction-drift",
    "shadow-agreement",
)


class Phase(enum.StrEnum):
    """What `kubectl get md` shows in the Phase column."""

    PENDING = "Pending"  # first revision starting, nothing served yet
    PROGRESSING = "Progressing"  # candidate starting, or Full: switched and baking
    SHADOW = "Shadow"  # candidate receives mirrored traffic only
    CANARY = "Canary"  # candidate receives a share of primary traffic
    PAUSED = "Paused"  # waiting for a user (manual pause, too many inconclusive runs, promote)
    SUCCEEDED = "Succeeded"  # desired revision is stable and serves all traffic
    ROLLED_BACK = "RolledBack"  # candidate failed, all traffic back on stable
    FAILED = "Failed"  # first revision never became ready: nothing to roll back to


class Stage(enum.StrEnum):
    """Internal position of the rollout; several stages map to one Phase."""

    INITIAL = "Initial"  # first revision, becomes stable directly
    STARTING = "Starting"  # candidate pods starting, no traffic
    SHADOW = "Shadow"
    CANARY = "Canary"
    BAKE = "Bake"  # Full strategy: 100% on candidate, analysis continues
    DONE = "Done"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


ACTIVE_STAGES = frozenset({Stage.STARTING, Stage.SHADOW, Stage.CANARY, Stage.BAKE})
ANALYSED_STAGES = frozenset({Stage.SHADOW, Stage.CANARY, Stage.BAKE})

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_DURATION_FULL = re.compile(r"^([0-9]+(ms|s|m|h))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `1m30s` (the CRD enforces the same regex)."""
    if not _DURATION_FULL.match(text):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m, 500ms")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def format_promql_duration(seconds: float) -> str:
    """A PromQL range such as `30s` (whole seconds, at least 1s)."""
    return f"{max(1, round(seconds))}s"


@dataclass(frozen=True)
class Model:
    name: str
    version: str
    uri: str
    digest: str = ""


@dataclass(frozen=True)
class Predictor:
    image: str
    replicas: int = 1
    resources: dict[str, Any] = field(default_factory=dict)
    max_batch_size: int = 32
    max_latency_ms: int = 5
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MetricSpec:
    name: str
    min: float | None = None
    max: float | None = None
    query: str | None = None

    @property
    def threshold_text(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Analysis:
    interval: float = 30.0
    initial_delay: float = 0.0
    failure_limit: int = 1
    inconclusive_limit: int = 3
    min_requests: int = 50
    metrics: tuple[MetricSpec, ...] = (
        MetricSpec("error-rate", max=0.01),
        MetricSpec("latency-p99", max=0.5),
    )


@dataclass(frozen=True)
class CanaryStep:
    weight: int
    pause: float = 60.0


@dataclass(frozen=True)
class Shadow:
    duration: float = 300.0
    min_requests: int = 100
    mirror_percent: int = 100


@dataclass(frozen=True)
class Strategy:
    type: str = "Canary"
    shadow: Shadow | None = None
    steps: tuple[CanaryStep, ...] = ()
    analysis: Analysis = field(default_factory=Analysis)
    auto_promote: bool = True
    progress_deadline: float = 600.0
    bake_duration: float = 300.0
    crash_loop_restarts: int = 3


@dataclass(frozen=True)
class Traffic:
    provider: str = "builtin"
    http_route: str | None = None
    rule_index: int = 0
    # builtin provider: router pods (two, so that one can go without an outage)
    router_replicas: int = 2


@dataclass(frozen=True)
class ModelDeployment:
    """The parts of one ModelDeployment that the operator acts on."""

    name: str
    namespace: str
    uid: str
    generation: int
    model: Model
    predictor: Predictor
    strategy: Strategy
    traffic: Traffic
    revision_history_limit: int = 3
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def revision(self) -> str:
        """Name of the desired revision: `NAME-<hash10>` of model + predictor."""
        return revision_name(self.name, self.model, self.predictor)


def revision_name(name: str, model: Model, predictor: Predictor) -> str:
    payload = json.dumps(
        {"model": model.__dict__, "predictor": _predictor_dict(predictor)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"{name}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


def _predictor_dict(p: Predictor) -> dict[str, Any]:
    # replicas are left out: scaling must not start a new rollout.
    return {
        "image": p.image,
        "resources": p.resources,
        "maxBatchSize": p.max_batch_size,
        "maxLatencyMs": p.max_latency_ms,
        "env": [list(e) for e in p.env],
    }


def parse(body: dict[str, Any]) -> ModelDeployment:
    """Typed view of a ModelDeployment object (as returned by the API server)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    m = spec.get("model") or {}
    p = spec.get("predictor") or {}
    s = spec.get("strategy") or {}
    t = spec.get("traffic") or {}
    batching = p.get("batching") or {}
    return ModelDeployment(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", "default"),
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 0),
        model=Model(
            name=m["name"], version=str(m["version"]), uri=m["uri"], digest=m.get("digest", "")
        ),
        predictor=Predictor(
            image=p["image"],
            replicas=int(p.get("replicas", 1)),
            resources=dict(p.get("resources") or {}),
            max_batch_size=int(batching.get("maxBatchSize", 32)),
            max_latency_ms=int(batching.get("maxLatencyMs", 5)),
            env=tuple((e["name"], str(e.get("value", ""))) for e in p.get("env") or ()),
        ),
        strategy=_parse_strategy(s),
        traffic=Traffic(
            provider=t.get("provider", "builtin"),
            http_route=(t.get("httpRoute") or {}).get("name"),
            rule_index=int((t.get("httpRoute") or {}).get("ruleIndex", 0)),
            router_replicas=int((t.get("router") or {}).get("replicas", 2)),
        ),
        revision_history_limit=int(spec.get("revisionHistoryLimit", 3)),
        annotations=dict(meta.get("annotations") or {}),
    )


def _parse_strategy(s: dict[str, Any]) -> Strategy:
    a = s.get("analysis") or {}
    sh = s.get("shadow")
    metrics = a.get("metrics")
    return Strategy(
        type=s.get("type", "Canary"),
        shadow=None
        if sh is None and s.get("type") != "Shadow"
        else Shadow(
            duration=parse_duration((sh or {}).get("duration", "5m")),
            min_requests=int((sh or {}).get("minRequests", 100)),
            mirror_percent=int((sh or {}).get("mirrorPercent", 100)),
        ),
        steps=tuple(
            CanaryStep(weight=int(st["weight"]), pause=parse_duration(st.get("pause", "1m")))
            for st in (s.get("canary") or {}).get("steps") or ()
        ),
        analysis=Analysis(
            interval=parse_duration(a.get("interval", "30s")),
            initial_delay=parse_duration(a.get("initialDelay", "0s")),
            failure_limit=int(a.get("failureLimit", 1)),
            inconclusive_limit=int(a.get("inconclusiveLimit", 3)),
            min_requests=int(a.get("minRequests", 50)),
            metrics=Analysis.metrics
            if metrics is None
            else tuple(
                MetricSpec(name=x["name"], min=x.get("min"), max=x.get("max"), query=x.get("query"))
                for x in metrics
            ),
        ),
        auto_promote=bool(s.get("autoPromote", True)),
        progress_deadline=parse_duration(s.get("progressDeadline", "10m")),
        bake_duration=parse_duration(s.get("bakeDuration", "5m")),
        crash_loop_restarts=int(s.get("crashLoopRestarts", 3)),
    )
