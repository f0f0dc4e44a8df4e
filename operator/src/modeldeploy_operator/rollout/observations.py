"""The input of `step`: one tick's view of the candidate, the stable, the gates and the user."""

from __future__ import annotations

from dataclasses import dataclass

from modeldeploy_operator.analysis.verdicts import AnalysisResult
from modeldeploy_operator.rollout.commands import Command
from modeldeploy_operator.rollout.gating import HookResult, ValidationOutcome


@dataclass(frozen=True)
class Observations:
    """What the caller saw in the cluster (and Prometheus) for this tick."""

    stable_ready: bool = False
    candidate_ready: bool = False
    # A crash-looping candidate pod past strategy.crashLoopRestarts (podhealth.crash_loop).
    candidate_failure: str | None = None
    # Why a candidate container is still waiting (named when progressDeadline passes).
    candidate_waiting: str | None = None
    analysis: AnalysisResult | None = None
    command: Command | None = None
    # Webhooks called this tick (None: not called): see gates/observe.py.
    pre_rollout: HookResult | None = None
    confirmation: HookResult | None = None
    rollback_request: str | None = None  # a rollback webhook answered 2xx
    validation: ValidationOutcome | None = None
