"""Why a rollout waits for a person: the `status.paused.reason` vocabulary."""

from __future__ import annotations

from modeldeploy_operator.spec import Phase
from modeldeploy_operator.status import Status

# Every `status.paused.reason` the machine writes (the paused-rollouts gauge
# exports each, 0 when unused, so alerts on one see a series).
PAUSE_INCONCLUSIVE = "InconclusiveAnalysis"
PAUSE_AWAITING_PROMOTION = "AwaitingPromotion"
PAUSE_MANUAL = "ManualPause"
PAUSE_REASONS = (PAUSE_INCONCLUSIVE, PAUSE_AWAITING_PROMOTION, PAUSE_MANUAL)


def pause_reason(status: Status) -> str | None:
    """Why a rollout waits for a person, or None: the reason counts only while the
    phase is Paused (a pause left in a finished stage is not waiting)."""
    if status.phase != str(Phase.PAUSED):
        return None
    return (status.paused.reason if status.paused else None) or "Unknown"
