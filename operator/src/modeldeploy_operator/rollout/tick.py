"""One tick's working status, and the transitions every part of the machine takes.

`Tick.s` is replaced (never mutated) by each change, and the Events of the
tick collect in `Tick.events`. Promotion, rollback and pause live here
because a command, a gate's answer, an analysis run and the stage sequence
can each end in them, and must end in them the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from modeldeploy_operator.rollout import derived, pauses, timing
from modeldeploy_operator.rollout.decision import Event
from modeldeploy_operator.spec import ModelDeployment, Stage
from modeldeploy_operator.status import (
    Analysis,
    Degraded,
    Gates,
    HistoryEntry,
    Paused,
    Ref,
    Status,
)

MAX_HISTORY = 20


class Tick:
    """The status being built by one `step`, with the Events it emits."""

    def __init__(self, md: ModelDeployment, s: Status, now: dt.datetime) -> None:
        self.md = md
        self.s = s
        self.now = now
        self.events: list[Event] = []

    # -- the working status ---------------------------------------------------
    def set(self, **changes: object) -> None:
        self.s = replace(self.s, **changes)  # type: ignore[arg-type]

    @property
    def analysis(self) -> Analysis:
        return self.s.analysis or Analysis()

    def set_analysis(self, **changes: object) -> None:
        self.set(analysis=replace(self.analysis, **changes))  # type: ignore[arg-type]

    @property
    def gates(self) -> Gates:
        return self.s.gates or Gates()

    @property
    def stage(self) -> Stage | None:
        return Stage(self.s.stage) if self.s.stage else None

    def emit(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def desired_ref(self) -> Ref:
        """The revision the spec asks for."""
        m = self.md.model
        return Ref(m.version, self.md.revision, m.digest, m.uri)

    def candidate_text(self) -> str:
        return derived.ref_text(self.s.candidate)

    def enter(self, stage: Stage, reason: str, message: str, *, step: int = 0) -> None:
        self.set(
            current_step=step,
            stage=str(stage),
            stage_started_at=timing.timestamp(self.now),
            promotion_requested_at=None,  # promoted, or a stage a held promote no longer fits
        )
        self.set_analysis(passes=0, requests=0)
        self.emit("Normal", reason, message)

    def remember(self, ref: Ref | None, result: str, reason: str, message: str) -> None:
        if not ref:
            return
        entry = HistoryEntry(
            ref.version, ref.revision, result, reason, message, timing.timestamp(self.now)
        )
        self.set(history=(*self.s.history, entry)[-MAX_HISTORY:])

    # -- transitions ----------------------------------------------------------
    def start_initial(self) -> None:
        self.set(
            stable=self.desired_ref(),
            candidate=None,
            rollout_started_at=timing.timestamp(self.now),
            degraded=None,
        )
        self.enter(
            Stage.INITIAL, "Deploying", f"first revision: version {self.md.model.version} as stable"
        )

    def promote(self, why: str) -> None:
        cand = self.s.candidate
        self.remember(cand, "Promoted", "Promoted", why)
        gates = None if self.s.gates is None else replace(self.s.gates, confirm_promotion=None)
        self.set(stable=cand, candidate=None, paused=None, gates=gates)
        self.enter(Stage.DONE, "Promoted", f"{derived.ref_text(cand)} promoted to stable: {why}")

    def rollback(self, reason: str, message: str) -> None:
        cand = self.s.candidate
        text = f"rolled back {derived.ref_text(cand)}: {message}"
        self.remember(cand, "RolledBack", reason, message)
        self.set(
            blocked_revision=cand.revision if cand else None,
            paused=None,
            promotion_requested_at=None,
            degraded=Degraded(reason, text),
            stage=str(Stage.ROLLED_BACK),
            stage_started_at=timing.timestamp(self.now),
        )
        self.emit("Warning", "RolledBack", text)

    def pause(self, reason: str, message: str) -> None:
        self.set(paused=Paused(reason, message, timing.timestamp(self.now)))
        warning = reason == pauses.PAUSE_INCONCLUSIVE
        self.emit("Warning" if warning else "Normal", "Paused", message)
