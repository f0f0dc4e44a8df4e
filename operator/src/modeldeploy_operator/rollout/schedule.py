"""What the caller should observe before a tick: analysis, webhooks, validation.

Each of these costs I/O (a Prometheus query, a webhook call, requests to the
candidate's pods), so the caller asks here first; the answers feed
`observations.Observations`. Retries wait one analysis interval.
"""

from __future__ import annotations

import datetime as dt

from modeldeploy_operator.gates.hookspec import PRE_ROLLOUT, ROLLOUT, of_type
from modeldeploy_operator.rollout import timing
from modeldeploy_operator.spec import ANALYSED_STAGES, ModelDeployment, Stage
from modeldeploy_operator.status import PreRollout, Status, Validation


def analysis_due(md: ModelDeployment, status: Status, now: dt.datetime) -> bool:
    """Whether the caller should query Prometheus before calling `step`.

    The first run of a stage comes one interval (plus the initial delay)
    after the stage began, so that the range covers the stage's own traffic.
    """
    a = md.strategy.analysis
    judged = a.metrics or of_type(md.strategy.webhooks, ROLLOUT)
    if status.stage not in ANALYSED_STAGES or status.paused or not judged:
        return False
    started = timing.parse_time(status.stage_started_at)
    if started is None:
        return True
    since = started + dt.timedelta(seconds=a.initial_delay)
    last = timing.parse_time(status.analysis.last_run_at if status.analysis else None)
    if last is not None and last > since:
        since = last
    return timing.interval_over(since, now, a.interval)


def pre_rollout_due(md: ModelDeployment, status: Status, now: dt.datetime) -> bool:
    """Whether the caller should call the pre-rollout webhooks (candidate Ready aside):
    still starting, not passed yet, and at most once per analysis interval."""
    if status.stage != Stage.STARTING or status.paused:
        return False
    if not of_type(md.strategy.webhooks, PRE_ROLLOUT):
        return False
    pre = (status.gates and status.gates.pre_rollout) or PreRollout()
    if pre.state == "Passed":
        return False
    last = timing.parse_time(pre.last_call_at)
    return timing.interval_over(last, now, md.strategy.analysis.interval)


def validation_due(md: ModelDeployment, status: Status, now: dt.datetime) -> bool:
    """Whether the caller should validate the (Ready) candidate before any traffic:
    not passed yet, and an attempt that could not run is retried one interval later."""
    if md.strategy.validation is None or status.stage != Stage.STARTING:
        return False
    v = status.validation or Validation()
    if status.paused or v.state == "Passed":
        return False
    last = timing.parse_time(v.time)
    return timing.interval_over(last, now, md.strategy.analysis.interval)


def confirmation_due(status: Status) -> bool:
    """Whether promotion waits for the confirm-promotion webhooks (asked every tick)."""
    return (
        status.stage in ANALYSED_STAGES
        and not status.paused
        and bool(status.gates and status.gates.confirm_promotion)
    )
