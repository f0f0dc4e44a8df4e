"""Status fields that follow from stage, step and pause: phase, traffic, conditions.

Computed afresh at the end of every tick, never changed on their own, so
they cannot disagree with the stage they describe.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from modeldeploy_operator.rollout import pauses, timing, weights
from modeldeploy_operator.spec import ACTIVE_STAGES, ModelDeployment, Phase, Stage
from modeldeploy_operator.status import Condition, Ref, Status

_PHASE_OF_STAGE = {
    Stage.INITIAL: Phase.PENDING,
    Stage.STARTING: Phase.PROGRESSING,
    Stage.SHADOW: Phase.SHADOW,
    Stage.CANARY: Phase.CANARY,
    Stage.BAKE: Phase.PROGRESSING,
    Stage.DONE: Phase.SUCCEEDED,
    Stage.ROLLED_BACK: Phase.ROLLED_BACK,
    Stage.FAILED: Phase.FAILED,
}


def ref_text(ref: Ref | None) -> str:
    """A revision as Events, conditions and history messages name it."""
    if ref is None:
        return "version None (None)"  # as the status said before a candidate existed
    return f"version {ref.version} ({ref.revision})"


def derive(md: ModelDeployment, s: Status, now: dt.datetime) -> Status:
    """Phase, traffic and conditions follow from stage, step and pause."""
    if s.stage is None:
        raise ValueError("no stage: the machine sets one before deriving")
    stage = Stage(s.stage)
    paused = s.paused
    phase = Phase.PAUSED if paused and stage in ACTIVE_STAGES else _PHASE_OF_STAGE[stage]
    traffic = weights.traffic_for(md, s, stage)
    s = replace(s, phase=str(phase), traffic=traffic, canary_weight=traffic.canary_weight)
    degraded = s.degraded
    if stage is Stage.DONE:
        ready = ("True", "RolloutComplete", f"{ref_text(s.stable)} serves all traffic")
    elif stage is Stage.INITIAL:
        ready = ("False", "Deploying", f"waiting for {ref_text(s.stable)} to become Ready")
    elif stage in ACTIVE_STAGES:
        ready = ("False", "RolloutInProgress", f"rolling out {ref_text(s.candidate)}")
    else:
        ready = ("False", str(phase), degraded.message if degraded else str(phase))
    confirm = s.gates.confirm_promotion if s.gates else None
    if paused and stage in ACTIVE_STAGES:
        progressing = ("False", paused.reason, paused.message)
    elif stage in ACTIVE_STAGES and s.promotion_requested_at:
        msg = f"promote asked: waiting for {ref_text(s.candidate)} to scale to the stable's pods"
        progressing = ("True", "PromotionRequested", msg)
    elif stage in ACTIVE_STAGES and confirm:
        progressing = ("True", "AwaitingConfirmation", confirm.message)
    elif stage in ACTIVE_STAGES or stage is Stage.INITIAL:
        progressing = ("True", f"{stage}", _stage_text(md, s, stage))
    else:
        progressing = ("False", str(phase), f"no rollout in progress ({phase})")
    if degraded and stage in (Stage.ROLLED_BACK, Stage.FAILED):
        deg = ("True", degraded.reason, degraded.message)
    elif paused and paused.reason == pauses.PAUSE_INCONCLUSIVE and stage in ACTIVE_STAGES:
        deg = ("True", pauses.PAUSE_INCONCLUSIVE, paused.message)
    else:
        deg = ("False", "AsExpected", "no problem detected")
    conditions = s.conditions
    for type_, (state, reason, message) in (
        ("Ready", ready),
        ("Progressing", progressing),
        ("Degraded", deg),
    ):
        new = Condition(type_, state, reason, message, md.generation, timing.timestamp(now))
        conditions = _set_condition(conditions, new)
    return replace(s, conditions=conditions)


def _stage_text(md: ModelDeployment, s: Status, stage: Stage) -> str:
    if stage is Stage.CANARY:
        i = s.current_step
        return f"canary step {i + 1}/{len(md.strategy.steps)} at {md.strategy.steps[i].weight}%"
    return {
        Stage.INITIAL: "first revision starting",
        Stage.STARTING: "candidate starting",
        Stage.SHADOW: "candidate in shadow",
        Stage.BAKE: "all traffic on candidate, baking",
    }.get(stage, str(stage))


def _set_condition(conditions: tuple[Condition, ...], new: Condition) -> tuple[Condition, ...]:
    """Replace the condition of `new`'s type; its transition time moves only with its status."""
    old = next((c for c in conditions if c.type == new.type), None)
    if old is None:
        return (*conditions, new)
    if old.status == new.status and old.last_transition_time:
        new = replace(new, last_transition_time=old.last_transition_time)
    return tuple(new if c is old else c for c in conditions)
