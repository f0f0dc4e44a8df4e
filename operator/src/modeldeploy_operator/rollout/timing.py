"""Time as the rollout keeps it: timestamps in `status`, seconds between them.

The machine reads no clock: `now` comes from the caller and every duration
is measured from a timestamp the status already holds, so an operator
restarted mid-stage measures from the same instant as the one before it.
"""

from __future__ import annotations

import datetime as dt

from modeldeploy_operator.spec import ModelDeployment, Stage
from modeldeploy_operator.status import Status

# Timer ticks jitter; an analysis a quarter second early is still on time.
_SLACK = 0.25


def timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_since(time: str | None, now: dt.datetime) -> float:
    """Seconds from a status timestamp to `now`; 0 when the status has none."""
    t = parse_time(time)
    return 0.0 if t is None else (now - t).total_seconds()


def interval_over(since: dt.datetime | None, now: dt.datetime, interval: float) -> bool:
    """Whether `interval` seconds have passed since `since` (at once when never),
    within the timer's jitter."""
    return since is None or (now - since).total_seconds() + _SLACK >= interval


def progress_deadline_passed(md: ModelDeployment, s: Status, now: dt.datetime) -> bool:
    """Whether the revision being started has had `progressDeadline` to become Ready."""
    return seconds_since(s.rollout_started_at, now) > md.strategy.progress_deadline


def stage_time_over(md: ModelDeployment, s: Status, stage: Stage, now: dt.datetime) -> bool:
    """Whether the stage has lasted as long as the strategy asks: the shadow's
    duration, the canary step's pause, the bake (time alone never ends a stage)."""
    strategy = md.strategy
    elapsed = seconds_since(s.stage_started_at, now)
    if stage is Stage.SHADOW:
        return strategy.shadow is None or elapsed >= strategy.shadow.duration
    if stage is Stage.CANARY:
        return elapsed >= strategy.steps[s.current_step].pause
    return elapsed >= strategy.bake_duration
