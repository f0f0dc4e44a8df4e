"""The webhooks' side of a reconcile: call the gating ones, queue the others.

`Gates.observe` calls the pre-rollout, confirm-promotion and rollback webhooks
when the status says they are due (`rollout.schedule`) and returns what they
answered, for `rollout.observations.Observations`; `rollout_measurements`
turns rollout webhooks into analysis measurements; `announce` queues event
and post-rollout webhooks and notifications for the transitions of a
decision, without waiting for them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

from modeldeploy_operator import metrics as opmetrics
from modeldeploy_operator import spec
from modeldeploy_operator.analysis.verdicts import Measurement, Verdict
from modeldeploy_operator.gates import hookspec, payload
from modeldeploy_operator.gates.client import HookClient, Outcome
from modeldeploy_operator.gates.dispatch import Delivery, Dispatcher
from modeldeploy_operator.rollout import gating, schedule, timing
from modeldeploy_operator.rollout.decision import Event
from modeldeploy_operator.status import Status

# Per-analysis-run noise that would flood a chat channel; Events and event
# webhooks still get them.
QUIET_REASONS = frozenset({"AnalysisInconclusive", "DryRunMetricFailed"})
POST_ROLLOUT_REASONS = frozenset({"Promoted", "RolledBack"})


@dataclass(frozen=True)
class GateObservations:
    pre_rollout: gating.HookResult | None = None
    confirmation: gating.HookResult | None = None
    rollback_request: str | None = None


class Gates:
    def __init__(self, client: HookClient | None = None, dispatcher: Dispatcher | None = None):
        self.client = client or HookClient()
        self.dispatcher = dispatcher or Dispatcher(self.client)

    async def _call(
        self, md: spec.ModelDeployment, status: Status, hooks: tuple[hookspec.Webhook, ...]
    ) -> list[tuple[hookspec.Webhook, Outcome]]:
        now = dt.datetime.now(dt.UTC)

        async def one(hook: hookspec.Webhook) -> tuple[hookspec.Webhook, Outcome]:
            body = _body(md, hook, status, now)
            outcome = await self.client.post(hook.url, body, hook.timeout)
            result = "ok" if outcome.ok else "failed"
            opmetrics.WEBHOOK_CALLS.labels(type=hook.type, result=result).inc()
            return hook, outcome

        return list(await asyncio.gather(*(one(h) for h in hooks)))

    async def _all_ok(
        self, md: spec.ModelDeployment, status: Status, type_: str
    ) -> gating.HookResult:
        hooks = hookspec.of_type(md.strategy.webhooks, type_)
        answers = await self._call(md, status, hooks)
        failed = [(h, o) for h, o in answers if not o.ok]
        if failed:
            hook, outcome = failed[0]
            return gating.HookResult(False, f"{type_} webhook {hook.name} {outcome.message}")
        names = ", ".join(h.name for h in hooks)
        return gating.HookResult(True, f"{type_} webhooks answered 2xx: {names}")

    async def observe(
        self,
        md: spec.ModelDeployment,
        status: Status,
        now: dt.datetime,
        *,
        candidate_ready: bool,
        analysis_due: bool,
    ) -> GateObservations:
        pre = confirm = None
        if candidate_ready and schedule.pre_rollout_due(md, status, now):
            pre = await self._all_ok(md, status, hookspec.PRE_ROLLOUT)
        waiting = schedule.confirmation_due(status)
        if waiting:
            confirm = await self._all_ok(md, status, hookspec.CONFIRM_PROMOTION)
        request = None
        rollback_hooks = hookspec.of_type(md.strategy.webhooks, hookspec.ROLLBACK)
        active = status.stage in spec.ANALYSED_STAGES
        if rollback_hooks and active and (analysis_due or waiting):
            for hook, outcome in await self._call(md, status, rollback_hooks):
                if outcome.ok:
                    request = f"rollback webhook {hook.name} {outcome.message}"
                    break
        return GateObservations(pre, confirm, request)

    async def rollout_measurements(
        self, md: spec.ModelDeployment, status: Status
    ) -> tuple[Measurement, ...]:
        """One measurement per rollout webhook: 2xx passes, anything else fails the run."""
        hooks = hookspec.of_type(md.strategy.webhooks, hookspec.ROLLOUT)
        return tuple(
            Measurement(
                f"webhook/{hook.name}",
                None if outcome.status is None else float(outcome.status),
                "2xx",
                Verdict.PASS if outcome.ok else Verdict.FAIL,
                f"rollout webhook {hook.name} {outcome.message}",
            )
            for hook, outcome in await self._call(md, status, hooks)
        )

    def announce(
        self,
        md: spec.ModelDeployment,
        status: Status,
        events: list[Event],
        now: dt.datetime,
    ) -> None:
        """Queue event / post-rollout webhooks and notifications; never waits."""
        for event in events:
            triple = (event.type, event.reason, event.message)
            hooks = hookspec.of_type(md.strategy.webhooks, hookspec.EVENT)
            if event.reason in POST_ROLLOUT_REASONS:
                hooks += hookspec.of_type(md.strategy.webhooks, hookspec.POST_ROLLOUT)
            for hook in hooks:
                body = _body(md, hook, status, now, triple)
                self.dispatcher.submit(Delivery(hook.type, hook.name, hook.url, body, hook.timeout))
            if event.reason in QUIET_REASONS:
                continue
            for n in md.notifications:
                if n.type == "slack":
                    body = payload.slack_payload(name=md.name, namespace=md.namespace, event=triple)
                else:
                    body = payload.notification_payload(
                        name=md.name,
                        namespace=md.namespace,
                        status=status,
                        event=triple,
                        now=timing.timestamp(now),
                    )
                self.dispatcher.submit(Delivery(f"notify-{n.type}", n.name, n.url, body, n.timeout))

    async def aclose(self) -> None:
        await self.dispatcher.aclose()
        await self.client.aclose()


def _body(
    md: spec.ModelDeployment,
    hook: hookspec.Webhook,
    status: Status,
    now: dt.datetime,
    event: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    return payload.hook_payload(
        hook,
        name=md.name,
        namespace=md.namespace,
        model=md.model.name,
        status=status,
        event=event,
        now=now,
    )
