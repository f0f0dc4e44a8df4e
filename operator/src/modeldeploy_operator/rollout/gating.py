"""Gates around traffic: what their answers do to the rollout.

Before any traffic, the validation set replayed on candidate and stable
(`strategy.validation`) and the pre-rollout webhooks must pass; before
promotion, the confirm-promotion webhooks. The caller makes the calls
(gates/observe.py, gates/validation.py) and passes the answers in as
`HookResult` / `ValidationOutcome`; this module only judges them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from modeldeploy_operator.gates.hookspec import CONFIRM_PROMOTION, PRE_ROLLOUT, of_type
from modeldeploy_operator.rollout import timing
from modeldeploy_operator.rollout.tick import Tick
from modeldeploy_operator.status import ConfirmPromotion, PreRollout, Validation

VALIDATION_ATTEMPTS = 3


@dataclass(frozen=True)
class HookResult:
    """The answer of one kind of webhook this tick: all 2xx, or why not."""

    ok: bool
    message: str


@dataclass(frozen=True)
class ValidationOutcome:
    """Pre-traffic validation of the candidate against stable (gates/validation.py)."""

    passed: bool
    message: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    # False when it could not run (no Ready pod, unreachable, too slow): tried
    # again one analysis interval later, a failure only after VALIDATION_ATTEMPTS.
    conclusive: bool = True


def validation_passed(t: Tick, outcome: ValidationOutcome | None) -> bool:
    """The validation set replayed on candidate and stable, before any traffic:
    a failure rolls back at once (nothing reached the candidate yet)."""
    if t.md.strategy.validation is None:
        return True
    v = t.s.validation or Validation()
    t.set(validation=v)
    if v.state == "Passed":
        return True
    if outcome is None:
        return False
    v = replace(
        v, message=outcome.message, metrics=dict(outcome.metrics), time=timing.timestamp(t.now)
    )
    if outcome.passed:
        t.set(validation=replace(v, state="Passed"))
        t.emit("Normal", "ValidationPassed", outcome.message)
        return True
    message = outcome.message
    if not outcome.conclusive:
        v = replace(v, attempts=(v.attempts or 0) + 1)
        if (v.attempts or 0) < VALIDATION_ATTEMPTS:
            t.set(validation=v)
            t.emit("Warning", "ValidationInconclusive", message)
            return False
        message = f"validation could not run {v.attempts} times: {message}"
        v = replace(v, message=message)
    t.set(validation=replace(v, state="Failed"))
    t.rollback("ValidationFailed", message)
    return False


def pre_rollout_passed(t: Tick, answer: HookResult | None) -> bool:
    """Pre-rollout webhooks before any traffic: a failure counts like a failed
    analysis run (rollback at failureLimit), retried once per interval."""
    if not of_type(t.md.strategy.webhooks, PRE_ROLLOUT):
        return True
    pre = t.gates.pre_rollout or PreRollout()
    t.set(gates=replace(t.gates, pre_rollout=pre))
    if pre.state == "Passed":
        return True
    if answer is None:
        return False
    pre = replace(pre, last_call_at=timing.timestamp(t.now), message=answer.message)
    if answer.ok:
        t.set(gates=replace(t.gates, pre_rollout=replace(pre, state="Passed")))
        t.emit("Normal", "PreRolloutPassed", answer.message)
        return True
    t.set(gates=replace(t.gates, pre_rollout=pre))
    t.set_analysis(failures=t.analysis.failures + 1)
    if t.analysis.failures >= t.md.strategy.analysis.failure_limit:
        t.rollback("PreRolloutFailed", answer.message)
    else:
        t.emit("Warning", "PreRolloutFailed", answer.message)
    return False


def promotion_confirmed(t: Tick, answer: HookResult | None) -> bool:
    """Confirm-promotion webhooks gate the promotion; analysis goes on meanwhile."""
    hooks = of_type(t.md.strategy.webhooks, CONFIRM_PROMOTION)
    if not hooks:
        return True
    waiting = t.gates.confirm_promotion
    if waiting and answer is not None and answer.ok:
        return True
    if not waiting:
        names = ", ".join(h.name for h in hooks)
        text = f"{t.candidate_text()} passed; waiting for confirm-promotion: {names}"
        confirm = ConfirmPromotion(timing.timestamp(t.now), text)
        t.set(gates=replace(t.gates, confirm_promotion=confirm))
        t.emit("Normal", "AwaitingConfirmation", text)
    elif answer is not None:
        confirm = replace(waiting, message=answer.message)
        t.set(gates=replace(t.gates, confirm_promotion=confirm))
    return False
