"""Builders of ModelDeployment bodies and analysis results for the unit tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from modeldeploy_operator import spec
from modeldeploy_operator.analysis.verdicts import AnalysisResult, Measurement, Verdict
from modeldeploy_operator.rollout import machine, observations, schedule
from modeldeploy_operator.rollout.decision import Decision, Event
from modeldeploy_operator.status import Status

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def body(
    version: str = "1.0.0",
    *,
    strategy: dict[str, Any] | None = None,
    name: str = "fraud",
    generation: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    b: dict[str, Any] = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ns", "uid": "u-1", "generation": generation},
        "spec": {
            "model": {"name": "fraud", "version": version, "uri": f"/models/{version}"},
            "predictor": {"image": "ghcr.io/modeldeploy/predictor:0.1.0", "replicas": 2},
            "strategy": strategy
            or {
                "type": "Canary",
                "canary": {"steps": [{"weight": 10, "pause": "1m"}, {"weight": 50, "pause": "1m"}]},
                "analysis": {"interval": "30s"},
            },
        },
    }
    b["spec"].update(extra)
    return b


def md(version: str = "1.0.0", **kw: Any) -> spec.ModelDeployment:
    return spec.parse(body(version, **kw))


def result(verdict: Verdict, requests: int = 100, metric: str = "error-rate") -> AnalysisResult:
    value = {Verdict.PASS: 0.0, Verdict.FAIL: 0.5, Verdict.INCONCLUSIVE: None}[verdict]
    return AnalysisResult(
        (Measurement(metric, value, "<= 0.01", verdict, f"{metric} is {value}"),), requests
    )


class Driver:
    """Feeds `machine.step` like the operator does, with a fake clock."""

    def __init__(self, strategy: dict[str, Any] | None = None, version: str = "1.0.0") -> None:
        self.strategy = strategy
        self.md = md(version, strategy=strategy)
        now = T0
        self.now = now
        self.state = Status()  # what the machine returned last, as the operator keeps it
        self.events: list[Event] = []

    def tick(self, seconds: float = 0.0, **obs: Any) -> Decision:
        self.now += dt.timedelta(seconds=seconds)
        decision = machine.step(self.md, self.state, observations.Observations(**obs), self.now)
        self.state = decision.status
        self.events.extend(decision.events)
        return decision

    def analyse(self, verdict: Verdict, seconds: float = 30.0, **obs: Any) -> Decision:
        """Wait `seconds`, assert analysis is due, run one with the given verdict."""
        self.now += dt.timedelta(seconds=seconds)
        assert schedule.analysis_due(self.md, self.state, self.now), self.status
        return self.tick(candidate_ready=True, stable_ready=True, analysis=result(verdict), **obs)

    @property
    def status(self) -> dict[str, Any]:
        """The status as the API stores it."""
        return self.state.to_api()

    @property
    def phase(self) -> str:
        return self.status["phase"]

    @property
    def stage(self) -> str:
        return self.status["stage"]

    def condition(self, type_: str) -> dict[str, Any]:
        return next(c for c in self.status["conditions"] if c["type"] == type_)

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    def deploy_stable(self) -> None:
        """First revision becomes stable and Ready."""
        self.tick(stable_ready=False)
        self.tick(1, stable_ready=True)
        assert self.phase == "Succeeded"

    def change(self, version: str, strategy: dict[str, Any] | None = None) -> None:
        """A new spec (new generation), keeping the strategy unless given."""
        self.strategy = strategy or self.strategy
        self.md = md(version, generation=self.md.generation + 1, strategy=self.strategy)


def started(strategy: dict[str, Any] | None = None) -> Driver:
    """Stable 1.0.0 serving, 2.0.0 applied and Ready: first stage entered."""
    d = Driver(strategy)
    d.deploy_stable()
    d.change("2.0.0")
    d.tick(1, stable_ready=True, candidate_ready=False)
    assert d.phase == "Progressing" and d.status["candidate"]["version"] == "2.0.0"
    d.tick(1, stable_ready=True, candidate_ready=True)
    return d
