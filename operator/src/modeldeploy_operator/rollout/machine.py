"""The stage sequence: `step(md, status, observations, now)` -> `Decision`.

One tick consumes a new command, follows the spec (a new revision starts a
candidate, a newer one supersedes it, a spec back to stable ends the
rollout), then moves the rollout on: from Starting through the gates into
the strategy's first stage, from stage to stage once each is complete, and
to promotion (or a pause awaiting `promote`) after the last. Phase, traffic
and conditions are derived last, from where the tick ended.
"""

from __future__ import annotations

import datetime as dt

from modeldeploy_operator.gates.hookspec import ROLLOUT, of_type
from modeldeploy_operator.rollout import analysis_runs, commands, derived, gating, pauses, timing
from modeldeploy_operator.rollout.decision import Decision
from modeldeploy_operator.rollout.observations import Observations
from modeldeploy_operator.rollout.tick import Tick
from modeldeploy_operator.spec import ACTIVE_STAGES, ModelDeployment, Stage
from modeldeploy_operator.status import Analysis, Degraded, Status


def step(
    md: ModelDeployment, status: Status | None, obs: Observations, now: dt.datetime
) -> Decision:
    """Next status and Events for one ModelDeployment."""
    t = Tick(md, status or Status(), now)
    t.set(observed_generation=md.generation)
    if t.stage is None:
        t.start_initial()
    # Readiness this tick was judged against the floors of the status it started
    # from: only then do they include a held promotion's (see autoscaling.py).
    promotion_held = t.s.promotion_requested_at is not None
    # The command first: a `pause` or `abort` stops this very tick's advance.
    commands.consume(t, obs.command)
    _follow_spec(t)
    _advance(t, obs, promotion_held)
    t.s = derived.derive(md, t.s, now)
    return Decision(t.s, t.events)


def _follow_spec(t: Tick) -> None:
    desired = t.md.revision
    stage = t.stage
    stable = t.s.stable.revision if t.s.stable else None
    if stage in (Stage.INITIAL, Stage.FAILED) and stable != desired:
        t.remember(t.s.stable, "Superseded", "SpecChanged", "replaced by a new spec")
        t.start_initial()
        return
    if desired == stable:
        if stage in ACTIVE_STAGES:
            t.remember(t.s.candidate, "Superseded", "SpecChanged", "spec back to stable")
            t.set(candidate=None, paused=None)
            t.enter(Stage.DONE, "Superseded", "spec returned to the stable revision")
        return
    if desired == t.s.blocked_revision:
        return  # rolled back: not retried until the spec changes or `retry`
    if stage in ACTIVE_STAGES:
        if t.s.candidate and t.s.candidate.revision == desired:
            return
        t.remember(t.s.candidate, "Superseded", "SpecChanged", "replaced by a newer spec")
    _start_candidate(t)


def _start_candidate(t: Tick) -> None:
    t.set(
        candidate=t.desired_ref(),
        rollout_started_at=timing.timestamp(t.now),
        analysis=Analysis(),
        paused=None,
        degraded=None,
        blocked_revision=None,
        gates=None,
        validation=None,
    )
    t.enter(
        Stage.STARTING,
        "RolloutStarted",
        f"rolling out {t.candidate_text()} with strategy {t.md.strategy.type}",
    )


def _advance(t: Tick, obs: Observations, promotion_held: bool) -> None:
    stage = t.stage
    strategy = t.md.strategy
    if stage in (Stage.INITIAL, Stage.FAILED):
        if obs.stable_ready:
            t.remember(t.s.stable, "Promoted", "FirstRevision", "first revision")
            t.enter(Stage.DONE, "Available", f"version {t.md.model.version} is serving")
        elif stage is Stage.INITIAL and timing.progress_deadline_passed(t.md, t.s, t.now):
            msg = f"first revision not Ready within {strategy.progress_deadline:g}s"
            t.set(degraded=Degraded("ProgressDeadlineExceeded", msg), stage=str(Stage.FAILED))
            t.emit("Warning", "ProgressDeadlineExceeded", msg)
        return
    if stage not in ACTIVE_STAGES:
        return
    if obs.candidate_failure:
        t.rollback("CandidateFailing", obs.candidate_failure)
        return
    if obs.rollback_request:
        t.rollback("RollbackWebhook", obs.rollback_request)
        return
    if t.s.promotion_requested_at:
        if promotion_held:
            _finish_requested_promotion(t, obs)
        return
    if t.s.paused:
        return
    if stage is Stage.STARTING:
        if obs.candidate_ready:
            # Gates before any traffic; each bounds its own wait (timeout, failureLimit).
            if gating.validation_passed(t, obs.validation) and gating.pre_rollout_passed(
                t, obs.pre_rollout
            ):
                _enter_first_stage(t)
        elif timing.progress_deadline_passed(t.md, t.s, t.now):
            why = f" ({obs.candidate_waiting})" if obs.candidate_waiting else ""
            t.rollback(
                "ProgressDeadlineExceeded",
                f"candidate not Ready within {strategy.progress_deadline:g}s{why}",
            )
        return
    if obs.analysis is not None and not analysis_runs.record(t, obs.analysis):
        return
    # Autoscaled: the pods for the next weight must be ready before it moves.
    capacity = t.md.predictor.autoscaling is None or obs.candidate_ready
    if _stage_complete(t, stage) and capacity:
        _next_stage(t, stage, obs)


def _finish_requested_promotion(t: Tick, obs: Observations) -> None:
    """A user's `promote` of an autoscaled candidate: once its pods are ready, or
    after `progressDeadline` anyway (the user asked; its HPA then catches up)."""
    if obs.candidate_ready:
        t.promote("promoted by user")
    elif timing.seconds_since(t.s.promotion_requested_at, t.now) > t.md.strategy.progress_deadline:
        t.emit(
            "Warning",
            "PromotedUnderCapacity",
            f"{t.candidate_text()} had fewer ready pods than the stable's "
            f"{t.md.strategy.progress_deadline:g}s after `promote`; promoted anyway",
        )
        t.promote("promoted by user before its pods were ready")


def _enter_first_stage(t: Tick) -> None:
    strategy = t.md.strategy
    if strategy.type == "Shadow":
        t.enter(Stage.SHADOW, "ShadowStarted", f"mirroring traffic to {t.candidate_text()}")
    elif strategy.type == "Full":
        t.enter(Stage.BAKE, "Switched", f"all traffic on {t.candidate_text()}, baking")
    else:
        _enter_canary(t, 0)


def _enter_canary(t: Tick, index: int) -> None:
    steps = t.md.strategy.steps
    weight = steps[index].weight
    t.enter(
        Stage.CANARY,
        "CanaryStep",
        f"step {index + 1}/{len(steps)}: {weight}% to {t.candidate_text()}",
        step=index,
    )


def _stage_complete(t: Tick, stage: Stage) -> bool:
    """A stage ends when a run passed (if anything judges it), its time is over
    and, in shadow, enough requests were compared: time alone never promotes."""
    strategy = t.md.strategy
    judged = strategy.analysis.gating_metrics or of_type(strategy.webhooks, ROLLOUT)
    if judged and t.analysis.passes < 1:
        return False
    shadow = strategy.shadow
    if stage is Stage.SHADOW and shadow is not None and t.analysis.requests < shadow.min_requests:
        return False
    return timing.stage_time_over(t.md, t.s, stage, t.now)


def _next_stage(t: Tick, stage: Stage, obs: Observations) -> None:
    steps = t.md.strategy.steps
    if stage is Stage.SHADOW and steps:
        _enter_canary(t, 0)
    elif stage is Stage.CANARY and t.s.current_step + 1 < len(steps):
        _enter_canary(t, t.s.current_step + 1)
    elif t.md.strategy.auto_promote:
        if gating.promotion_confirmed(t, obs.confirmation):
            t.promote("analysis passed")
    else:
        t.pause(
            pauses.PAUSE_AWAITING_PROMOTION, f"{t.candidate_text()} passed; run `promote` to finish"
        )
