"""One reconcile of one ModelDeployment: observe, decide, apply, record.

The Kopf handlers in `main.py` only call `Reconciler.reconcile`. The order
matters for safety: the decision (pure, in `rollout`) comes first; then the
children that carry more traffic are made ready before traffic moves; the
status write is what moves the builtin router; the candidate is scaled to
zero only after traffic has left it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from modeldeploy_operator import (
    announce,
    autoscaling,
    manifests,
    podhealth,
    spec,
    traffic,
)
from modeldeploy_operator import kube as kubemod
from modeldeploy_operator import metrics as opmetrics
from modeldeploy_operator.analysis import runner
from modeldeploy_operator.analysis.prometheus import MetricProvider
from modeldeploy_operator.analysis.verdicts import AnalysisResult
from modeldeploy_operator.gates import validation as validation_io
from modeldeploy_operator.gates.observe import Gates
from modeldeploy_operator.rollout import commands, machine, observations, pauses, schedule
from modeldeploy_operator.rollout.decision import Decision
from modeldeploy_operator.status import Status

log = logging.getLogger(__name__)
_STEADY = {spec.Stage.DONE, spec.Stage.ROLLED_BACK}


def is_steady(status: Status, generation: int, command: commands.Command | None) -> bool:
    """Nothing to do until the object changes: rollout over, spec seen, no new command."""
    return (
        status.stage in _STEADY
        and status.observed_generation == generation
        and not commands.is_new(command, status)
        and not status.pending_events  # Events still to post
    )


def needs_ticks(body: dict[str, Any]) -> bool:
    """Whether the periodic tick should run for this object (Kopf's timer filter).

    Kopf re-evaluates the filter on every watch event and stops the timer when
    it turns false, so a thousand settled objects cost no timer wake-ups.
    """
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    command = commands.from_annotations(annotations)
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    return not is_steady(Status.from_api(body.get("status")), generation, command)


@dataclass
class Reconciler:
    kube: kubemod.Kube
    provider: MetricProvider
    router_image: str | None = None
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    gates: Gates = field(default_factory=Gates)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Last status this process wrote, by uid, with its resourceVersion: the body a
    # timer sees can lag behind our own write by one watch event.
    _written: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    # Phase and pause reason (or None) by uid, for the process-wide gauges.
    _phases: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    # Generation whose deprecated fields were last logged, by uid.
    _warned: dict[str, int] = field(default_factory=dict)

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)
        self._written.pop(uid, None)
        self._phases.pop(uid, None)
        self._warned.pop(uid, None)
        self._export_phases()

    async def reconcile(self, body: dict[str, Any], *, full: bool = True) -> Decision | None:
        """Reconcile under the object's lock; `full=False` skips steady objects cheaply."""
        uid = body["metadata"]["uid"]
        lock = self._locks.setdefault(uid, asyncio.Lock())
        async with lock:
            started = time.perf_counter()
            try:
                return await self._reconcile(body, full=full)
            finally:
                opmetrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)

    def _current_status(self, body: dict[str, Any]) -> dict[str, Any]:
        status = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
        uid = body["metadata"]["uid"]
        written = self._written.get(uid)
        version = int(body["metadata"].get("resourceVersion") or 0)
        if written and written[0] > version:
            return written[1]
        return status

    async def _reconcile(self, body: dict[str, Any], *, full: bool) -> Decision | None:
        md = spec.parse(body)
        if md.deprecations and self._warned.get(md.uid) != md.generation:
            self._warned[md.uid] = md.generation  # once per spec change, not per tick
            for note in md.deprecations:
                log.warning("%s/%s: %s", md.namespace, md.name, note)
        status = self._current_status(body)
        command = commands.from_annotations(md.annotations)
        # Typed for the state machine; the API form is kept for the merge patch.
        state = Status.from_api(status)
        if not full and is_steady(state, md.generation, command):
            return None
        now = self.clock()
        obs = await self._observe(md, state, command, now)
        decision = machine.step(md, state, obs, now)
        # The transition's Events go into the same status write (announce.py).
        outgoing = announce.queue(md, decision.status, decision.events, now)
        new = outgoing.to_api()
        await self._apply(md, decision.status)
        patch = kubemod.merge_patch(status, new)
        if patch:
            version = await self.kube.patch_status(md.namespace, md.name, patch)
            self._written[md.uid] = (int(version), new)
        # Traffic has left a rolled-back or superseded candidate only now.
        await self._scale_down(md, decision.status)
        await self._post_pending(md, outgoing)
        for event in decision.events:
            opmetrics.TRANSITIONS.labels(reason=event.reason).inc()
            if event.reason == "RolledBack":
                degraded = decision.status.degraded
                reason = degraded.reason if degraded else "Unknown"
                opmetrics.ROLLBACKS.labels(reason=reason).inc()
            log.info(
                "%s/%s %s: %s",
                md.namespace,
                md.name,
                event.reason,
                event.message,
                extra={"md_namespace": md.namespace, "md_name": md.name, "md_reason": event.reason},
            )
        self.gates.announce(md, outgoing, decision.events, now)
        self._phases[md.uid] = (decision.phase, pauses.pause_reason(decision.status))
        self._export_phases()
        return decision

    async def _post_pending(self, md: spec.ModelDeployment, status: Status) -> None:
        """Post the outbox's Events (idempotent by name), then clear it.

        A refused post leaves the outbox for the next tick: Events must not hold
        up a rollout (a rollback with its Event unposted is still a rollback)."""
        pending = status.pending_events
        if not pending:
            return
        try:
            for entry in pending:
                await self.kube.post_event(announce.event_body(md, entry))
        except Exception as exc:  # any refusal: kept in status, retried next tick
            opmetrics.RECONCILE_ERRORS.labels(kind="event-post").inc()
            log.warning(
                "%s/%s: %d Event(s) not posted yet, kept in status.pendingEvents: %s",
                md.namespace,
                md.name,
                len(pending),
                exc,
            )
            return
        version = await self.kube.patch_status(md.namespace, md.name, {announce.PENDING: None})
        self._written[md.uid] = (int(version), replace(status, pending_events=()).to_api())

    async def _observe(
        self,
        md: spec.ModelDeployment,
        state: Status,
        command: commands.Command | None,
        now: dt.datetime,
    ) -> observations.Observations:
        replicas = md.predictor.replicas
        stable = state.stable.revision if state.stable else None
        cand = state.candidate.revision if state.candidate else None
        active = state.stage in spec.ACTIVE_STAGES
        stable_dep = await self.kube.get_deployment(md.namespace, stable) if stable else None
        # With autoscaling, ready means at least the floor for the traffic ahead.
        floors = autoscaling.floors(md, state, kubemod.replicas_of(stable_dep))
        cand_ready, failure, waiting = False, None, None
        if active and cand:
            cand_dep = await self.kube.get_deployment(md.namespace, cand)
            cand_ready = _ready(cand_dep, replicas, floors.get(cand))
            pods = await self.kube.list_pods(md.namespace, cand)
            failure = podhealth.crash_loop(pods, md.strategy.crash_loop_restarts)
            waiting = None if cand_ready else podhealth.waiting_reason(pods)
        analysis = None
        due = schedule.analysis_due(md, state, now)
        if due:
            analysis = await runner.run(md, state, self.provider)
            hooked = await self.gates.rollout_measurements(md, state)
            if hooked:  # after the request gate: a load test's answer counts as it is
                analysis = AnalysisResult(analysis.measurements + hooked, analysis.requests)
            opmetrics.VERDICTS.labels(verdict=str(analysis.verdict)).inc()
            opmetrics.count_measurements(analysis.measurements)
        validated = None
        if cand_ready and schedule.validation_due(md, state, now):
            validated = await validation_io.validate(md, state, self.kube)
            opmetrics.count_validation(validated.passed)
        gates = await self.gates.observe(
            md, state, now, candidate_ready=cand_ready, analysis_due=due
        )
        return observations.Observations(
            stable_ready=_ready(stable_dep, replicas, floors.get(stable or "")),
            candidate_ready=cand_ready,
            candidate_failure=failure,
            candidate_waiting=waiting,
            analysis=analysis,
            command=command,
            pre_rollout=gates.pre_rollout,
            confirmation=gates.confirmation,
            rollback_request=gates.rollback_request,
            validation=validated,
        )

    async def _apply(self, md: spec.ModelDeployment, status: Status) -> None:
        """Children for the new status, before the status (and so traffic) moves."""
        assert status.stage and status.stable and status.traffic, "step() always sets them"
        stage = spec.Stage(status.stage)
        replicas = md.predictor.replicas
        stable = status.stable.revision
        cand = status.candidate.revision if status.candidate else None
        if stage in spec.ACTIVE_STAGES and cand == md.revision:
            track = "shadow" if md.strategy.type == "Shadow" else "canary"
            await self._ensure_revision(md, replicas, track)
        elif stable == md.revision:
            await self._ensure_revision(md, replicas, "stable")
        if md.predictor.autoscaling is not None:
            await self._autoscale(md, status)
        elif stable != md.revision:
            await self._scale_existing(md.namespace, stable, replicas)
        await self.kube.apply(manifests.track_service(md, "stable", stable))
        if cand and stage in spec.ACTIVE_STAGES:
            for track in ("canary", "shadow"):
                await self.kube.apply(manifests.track_service(md, track, cand))
        provider = traffic.for_spec(md, self.kube, self.router_image)
        await provider.reconcile(md)
        await provider.set_routes(md, status.traffic.to_api())

    async def _ensure_revision(self, md: spec.ModelDeployment, replicas: int, track: str) -> None:
        # Created once; afterwards only scaled, so that the pods (and the track
        # they were started with) are not restarted by a promotion.
        scaled = md.predictor.autoscaling is not None  # then an HPA owns replicas
        dep = await self.kube.get_deployment(md.namespace, md.revision)
        if dep is None:
            self.kube.forget("Deployment", md.namespace, md.revision)
            manifest = manifests.revision_deployment(md, None if scaled else replicas, track)
            await self.kube.apply(manifest)
        elif not scaled and int((dep.get("spec") or {}).get("replicas", 0)) != replicas:
            await self.kube.scale(md.namespace, md.revision, replicas)

    async def _autoscale(self, md: spec.ModelDeployment, status: Status) -> None:
        """Each active revision's HPA with its floor; pods up to the floor at once."""
        stable = status.stable.revision if status.stable else ""
        stable_dep = await self.kube.get_deployment(md.namespace, stable)
        floors = autoscaling.floors(md, status, kubemod.replicas_of(stable_dep))
        for revision, floor in floors.items():
            dep = await self.kube.get_deployment(md.namespace, revision)
            if dep is None:
                continue
            # Raise only: lowering is the HPA's job (behind its stabilisation window).
            if kubemod.replicas_of(dep) < floor:
                await self.kube.scale(md.namespace, revision, floor)
            await self.kube.apply(autoscaling.hpa(md, revision, floor))

    async def _scale_existing(self, namespace: str, name: str, replicas: int) -> None:
        dep = await self.kube.get_deployment(namespace, name)
        if dep is not None and int((dep.get("spec") or {}).get("replicas", 0)) != replicas:
            await self.kube.scale(namespace, name, replicas)

    async def _scale_down(self, md: spec.ModelDeployment, status: Status) -> None:
        """Every revision that is neither stable nor an active candidate: 0 replicas;
        beyond the history limit, deleted (oldest first)."""
        keep = {status.stable.revision if status.stable else ""}
        if status.stage in spec.ACTIVE_STAGES and status.candidate:
            keep.add(status.candidate.revision)
        selector = f"{manifests.NAME_LABEL}={md.name},{manifests.COMPONENT_LABEL}=predictor"
        # An HPA would scale a revision back up: it goes first (all of them once
        # autoscaling is switched off; the operator then sets replicas again).
        active = keep if md.predictor.autoscaling is not None else set()
        for name in await self.kube.list_hpas(md.namespace, selector):
            if name not in active:
                await self.kube.delete_hpa(md.namespace, name)
        deps = await self.kube.list_deployments(md.namespace, selector)
        old = sorted(
            (d for d in deps if d["metadata"]["name"] not in keep),
            key=lambda d: d["metadata"].get("creationTimestamp", ""),
            reverse=True,
        )
        for index, dep in enumerate(old):
            name = dep["metadata"]["name"]
            if index >= md.revision_history_limit:
                await self.kube.delete_deployment(md.namespace, name)
            elif int((dep.get("spec") or {}).get("replicas", 0)) != 0:
                await self.kube.scale(md.namespace, name, 0)

    def _export_phases(self) -> None:
        states = self._phases.values()
        phases = opmetrics.tally((p for p, _ in states), (str(p) for p in spec.Phase))
        opmetrics.set_counts(opmetrics.ROLLOUTS, "phase", phases)
        paused = opmetrics.tally((r for _, r in states if r), pauses.PAUSE_REASONS)
        opmetrics.set_counts(opmetrics.PAUSED_ROLLOUTS, "reason", paused)


def _ready(dep: dict[str, Any] | None, replicas: int, floor: int | None) -> bool:
    """Ready at the spec's replicas, or (autoscaled) at least at the floor."""
    if floor is None:
        return kubemod.deployment_ready(dep, replicas)
    return kubemod.deployment_ready_at_least(dep, floor)
