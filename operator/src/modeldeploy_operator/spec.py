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

from modeldeploy_operator.gates.hookspec import (
    Notification,
    Webhook,
    parse_notifications,
    parse_webhooks,
)

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"
KIND = "ModelDeployment"

# Outcomes a feedback metric (accuracy, ...) needs before it judges anything.
DEFAULT_MIN_SAMPLES = 20


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
    # Secret whose keys become the predictor's environment (store credentials).
    credentials_secret: str = ""


@dataclass(frozen=True)
class Autoscaling:
    """One HorizontalPodAutoscaler per active revision (autoscaling.py)."""

    min_replicas: int = 1
    max_replicas: int = 10
    target_cpu: int | None = 80  # percent of the CPU request
    target_rps: float | None = None  # per pod, needs a custom-metrics adapter
    # The HPA's own `behavior` (scaleUp / scaleDown rules), passed through as
    # written: the CRD schema holds it to the HPA's shape. Empty: HPA defaults.
    behavior: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Predictor:
    image: str
    replicas: int = 1
    resources: dict[str, Any] = field(default_factory=dict)
    max_batch_size: int = 32
    max_wait_ms: int = 5  # spec.predictor.batching.maxWaitMs (formerly maxLatencyMs)
    env: tuple[tuple[str, str], ...] = ()
    # The user's partial pod template (podtemplate.py merges it into ours).
    template: dict[str, Any] = field(default_factory=dict)
    # None: the operator sets replicas itself; else HPAs own them (not in the hash).
    autoscaling: Autoscaling | None = None


@dataclass(frozen=True)
class MetricSpec:
    name: str
    min: float | None = None
    max: float | None = None
    query: str | None = None
    # Measured and shown, never counted toward failureLimit / inconclusiveLimit.
    dry_run: bool = False
    # Feedback metrics: labelled outcomes per interval below which the value is inconclusive.
    min_samples: int = DEFAULT_MIN_SAMPLES

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

    @property
    def gating_metrics(self) -> tuple[MetricSpec, ...]:
        """The metrics whose verdicts decide (dry-run ones are only shown)."""
        return tuple(m for m in self.metrics if not m.dry_run)


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
class Validation:
    """strategy.validation: replay the bundle's validation set before any traffic."""

    min_agreement: float | None = None
    max_accuracy_drop: float | None = None
    max_latency_ratio: float | None = None
    batch_size: int = 64
    latency_samples: int = 50
    timeout: float = 120.0


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
    webhooks: tuple[Webhook, ...] = ()
    validation: Validation | None = None


@dataclass(frozen=True)
class Traffic:
    provider: str = "builtin"
    http_route: str | None = None
    rule_index: int = 0
    # traffic.router.template: the router pods' subset of a pod template.
    router_template: dict[str, Any] = field(default_factory=dict)
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
    notifications: tuple[Notification, ...] = ()
    # Deprecated fields in use, for a warning (reconcile logs them).
    deprecations: tuple[str, ...] = ()

    @property
    def revision(self) -> str:
        """Name of the desired revision: `NAME-<hash10>` of model + predictor."""
        return revision_name(self.name, self.model, self.predictor)


def revision_name(name: str, model: Model, predictor: Predictor) -> str:
    payload = json.dumps(
        {"model": _model_dict(model), "predictor": _predictor_dict(predictor)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"{name}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


def _model_dict(m: Model) -> dict[str, Any]:
    # Fields added later enter the hash only when set, so that upgrading the
    # operator does not roll every existing ModelDeployment out again.
    out: dict[str, Any] = {"name": m.name, "version": m.version, "uri": m.uri, "digest": m.digest}
    if m.credentials_secret:
        out["credentials"] = m.credentials_secret
    return out


def _predictor_dict(p: Predictor) -> dict[str, Any]:
    # replicas are left out: scaling must not start a new rollout.
    out: dict[str, Any] = {
        "image": p.image,
        "resources": p.resources,
        "maxBatchSize": p.max_batch_size,
        # The hash keeps the old key: renaming it would roll every existing
        # ModelDeployment out again on upgrade.
        "maxLatencyMs": p.max_wait_ms,
        "env": [list(e) for e in p.env],
    }
    if p.template:  # a pod template change restarts pods: a new revision
        out["template"] = p.template
    return out


def parse(body: dict[str, Any]) -> ModelDeployment:
    """Typed view of a ModelDeployment object (as returned by the API server)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    m = spec.get("model") or {}
    p = spec.get("predictor") or {}
    s = spec.get("strategy") or {}
    t = spec.get("traffic") or {}
    batching = p.get("batching") or {}
    max_wait, deprecations = _max_wait_ms(batching)
    return ModelDeployment(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", "default"),
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 0),
        model=Model(
            name=m["name"],
            version=str(m["version"]),
            uri=m["uri"],
            digest=m.get("digest", ""),
            credentials_secret=((m.get("credentials") or {}).get("secretRef") or {}).get(
                "name", ""
            ),
        ),
        predictor=Predictor(
            image=p["image"],
            replicas=int(p.get("replicas", Predictor.replicas)),
            resources=dict(p.get("resources") or {}),
            max_batch_size=int(batching.get("maxBatchSize", Predictor.max_batch_size)),
            max_wait_ms=max_wait,
            env=tuple((e["name"], str(e.get("value", ""))) for e in p.get("env") or ()),
            template=dict(p.get("template") or {}),
            autoscaling=_parse_autoscaling(p.get("autoscaling")),
        ),
        strategy=_parse_strategy(s),
        traffic=Traffic(
            provider=t.get("provider", Traffic.provider),
            http_route=(t.get("httpRoute") or {}).get("name"),
            rule_index=int((t.get("httpRoute") or {}).get("ruleIndex", Traffic.rule_index)),
            router_template=dict((t.get("router") or {}).get("template") or {}),
            router_replicas=int((t.get("router") or {}).get("replicas", Traffic.router_replicas)),
        ),
        revision_history_limit=int(
            spec.get("revisionHistoryLimit", ModelDeployment.revision_history_limit)
        ),
        annotations=dict(meta.get("annotations") or {}),
        notifications=parse_notifications(spec.get("notifications")),
        deprecations=deprecations,
    )


def _max_wait_ms(batching: dict[str, Any]) -> tuple[int, tuple[str, ...]]:
    """maxWaitMs, or the deprecated maxLatencyMs (the CRD refuses both together)."""
    if "maxWaitMs" in batching:
        return int(batching["maxWaitMs"]), ()
    if "maxLatencyMs" in batching:
        note = (
            "spec.predictor.batching.maxLatencyMs is deprecated and will be removed "
            "in a later release: use maxWaitMs"
        )
        return int(batching["maxLatencyMs"]), (note,)
    return Predictor.max_wait_ms, ()


def _duration(section: dict[str, Any], key: str, default: float) -> float:
    """A duration field in seconds; absent, the dataclass default (already seconds)."""
    value = section.get(key)
    return default if value is None else parse_duration(value)


def _parse_autoscaling(a: dict[str, Any] | None) -> Autoscaling | None:
    if a is None:
        return None
    rps = a.get("targetRequestsPerSecond")
    cpu = a.get("targetCPUUtilizationPercentage")
    return Autoscaling(
        min_replicas=int(a.get("minReplicas", Autoscaling.min_replicas)),
        max_replicas=int(a["maxReplicas"]),
        # CPU is the default target unless only requests per second is asked for.
        target_cpu=(
            int(cpu) if cpu is not None else (None if rps is not None else Autoscaling.target_cpu)
        ),
        target_rps=float(rps) if rps is not None else None,
        behavior=dict(a.get("behavior") or {}),
    )


def _parse_strategy(s: dict[str, Any]) -> Strategy:
    a = s.get("analysis") or {}
    sh = s.get("shadow") or {}
    metrics = a.get("metrics")
    return Strategy(
        type=s.get("type", Strategy.type),
        shadow=None
        if s.get("shadow") is None and s.get("type") != "Shadow"
        else Shadow(
            duration=_duration(sh, "duration", Shadow.duration),
            min_requests=int(sh.get("minRequests", Shadow.min_requests)),
            mirror_percent=int(sh.get("mirrorPercent", Shadow.mirror_percent)),
        ),
        steps=tuple(
            CanaryStep(weight=int(st["weight"]), pause=_duration(st, "pause", CanaryStep.pause))
            for st in (s.get("canary") or {}).get("steps") or ()
        ),
        analysis=Analysis(
            interval=_duration(a, "interval", Analysis.interval),
            initial_delay=_duration(a, "initialDelay", Analysis.initial_delay),
            failure_limit=int(a.get("failureLimit", Analysis.failure_limit)),
            inconclusive_limit=int(a.get("inconclusiveLimit", Analysis.inconclusive_limit)),
            min_requests=int(a.get("minRequests", Analysis.min_requests)),
            metrics=Analysis.metrics
            if metrics is None
            else tuple(
                MetricSpec(
                    name=x["name"],
                    min=x.get("min"),
                    max=x.get("max"),
                    query=x.get("query"),
                    dry_run=bool(x.get("dryRun", False)),
                    min_samples=int(x.get("minSamples", DEFAULT_MIN_SAMPLES)),
                )
                for x in metrics
            ),
        ),
        auto_promote=bool(s.get("autoPromote", Strategy.auto_promote)),
        progress_deadline=_duration(s, "progressDeadline", Strategy.progress_deadline),
        bake_duration=_duration(s, "bakeDuration", Strategy.bake_duration),
        crash_loop_restarts=int(s.get("crashLoopRestarts", Strategy.crash_loop_restarts)),
        webhooks=parse_webhooks(s.get("webhooks")),
        validation=_parse_validation(s.get("validation")),
    )


def _parse_validation(v: dict[str, Any] | None) -> Validation | None:
    if v is None:
        return None
    return Validation(
        min_agreement=v.get("minAgreement"),
        max_accuracy_drop=v.get("maxAccuracyDrop"),
        max_latency_ratio=v.get("maxLatencyRatio"),
        batch_size=int(v.get("batchSize", Validation.batch_size)),
        latency_samples=int(v.get("latencySamples", Validation.latency_samples)),
        timeout=_duration(v, "timeout", Validation.timeout),
    )
