"""The rollout state machine, as one pure function.

`step(md, status, observations, now)` returns the next status and the Events
to emit; it does no I/O and reads no clock, so every transition is unit-tested
and an operator restarted mid-rollout continues from `status` alone (stage,
step, when it started, analysis counters, the last command consumed).

Traffic is part of the returned status (`status.traffic`, the contract the
router watches); the caller applies it and scales revisions from it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from modeldeploy_operator.analysis.verdicts import AnalysisResult, Verdict
from modeldeploy_operator.gates.hookspec import CONFIRM_PROMOTION, PRE_ROLLOUT, ROLLOUT, of_type
from modeldeploy_operator.spec import (
    ACTIVE_STAGES,
    ANALYSED_STAGES,
    ModelDeployment,
    Phase,
    Stage,
)
from modeldeploy_operator.status import (
    Analysis,
    Condition,
    ConfirmPromotion,
    Degraded,
    Gates,
    HistoryEntry,
    Paused,
    PreRollout,
    Ref,
    Status,
    Track,
    Traffic,
    Validation,
)

COMMAND_ANNOTATION = "modeldeploy.io/command"
COMMANDS = ("promote", "abort", "pause", "resume", "retry")
# Every `status.paused.reason` the machine writes (the paused-rollouts gauge
# exports each, 0 when unused, so alerts on one see a series).
PAUSE_INCONCLUSIVE = "InconclusiveAnalysis"
PAUSE_AWAITING_PROMOTION = "AwaitingPromotion"
PAUSE_MANUAL = "ManualPause"
PAUSE_REASONS = (PAUSE_INCONCLUSIVE, PAUSE_AWAITING_PROMOTION, PAUSE_MANUAL)
MAX_MEASUREMENTS = 20
VALIDATION_ATTEMPTS = 3
MAX_HISTORY = 20
# Timer ticks jitter; an analysis a quarter second early is still on time.
_SLACK = 0.25

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


@dataclass(frozen=True)
class Command:
    """A manual command from the `modeldeploy.io/command` annotation: `ACTION:NONCE`."""

    action: str
    nonce: str


def parse_command(value: str | None) -> Command | None:
    if not value:
        return None
    action, _, nonce = value.strip().partition(":")
    return Command(action.strip().lower(), nonce.strip() or action.strip())


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


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    status: Status
    events: list[Event] = field(default_factory=list)

    @property
    def phase(self) -> str:
        return self.status.phase or ""


def timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def analysis_due(md: ModelDeployment, status: Status, now: dt.datetime) -> bool:
    """Whether the caller should query Prometheus before calling `step`.

    The first run of a stage comes one interval (plus the initial delay)
    after the stage began, so that the range covers the stage's own traffic.
    """
    a = md.strategy.analysis
    judged = a.metrics or of_type(md.strategy.webhooks, ROLLOUT)
    if status.stage not in ANALYSED_STAGES or status.paused or not judged:
        return False
    started = parse_time(status.stage_started_at)
    if started is None:
        return True
    since = started + dt.timedelta(seconds=a.initial_delay)
    last = parse_time(status.analysis.last_run_at if status.analysis else None)
    if last is not None and last > since:
        since = last
    return (now - since).total_seconds() + _SLACK >= a.interval


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
    last = parse_time(pre.last_call_at)
    return last is None or (now - last).total_seconds() + _SLACK >= md.strategy.analysis.interval


def validation_due(md: ModelDeployment, status: Status, now: dt.datetime) -> bool:
    """Whether the caller should validate the (Ready) candidate before any traffic:
    not passed yet, and an attempt that could not run is retried one interval later."""
    if md.strategy.validation is None or status.stage != Stage.STARTING:
        return False
    v = status.validation or Validation()
    if status.paused or v.state == "Passed":
        return False
    last = parse_time(v.time)
    return last is None or (now - last).total_seconds() + _SLACK >= md.strategy.analysis.interval


def confirmation_due(status: Status) -> bool:
    """Whether promotion waits for the confirm-promotion webhooks (asked every tick)."""
    return (
        status.stage in ANALYSED_STAGES
        and not status.paused
        and bool(status.gates and status.gates.confirm_promotion)
    )


def step(
    md: ModelDeployment, status: Status | None, obs: Observations, now: dt.datetime
) -> Decision:
    """Next status and Events for one ModelDeployment."""
    machine = _Machine(md, status or Status(), now)
    machine.run(obs)
    return Decision(machine.s, machine.events)


class _Machine:
    """One tick: `s` is replaced (never mutated) by each transition."""

    def __init__(self, md: ModelDeployment, s: Status, now: dt.datetime) -> None:
        self.md = md
        self.s = s
        self.now = now
        self.events: list[Event] = []

    # -- helpers ---------------------------------------------------------
    def set(self, **changes: object) -> None:
        self.s = replace(self.s, **changes)  # type: ignore[arg-type]

    @property
    def a(self) -> Analysis:
        return self.s.analysis or Analysis()

    def set_analysis(self, **changes: object) -> None:
        self.set(analysis=replace(self.a, **changes))  # type: ignore[arg-type]

    @property
    def gates(self) -> Gates:
        return self.s.gates or Gates()

    @property
    def stage(self) -> Stage | None:
        return Stage(self.s.stage) if self.s.stage else None

    def emit(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def ref(self) -> Ref:
        m = self.md.model
        return Ref(m.version, self.md.revision, m.digest, m.uri)

    def elapsed(self, time: str | None) -> float:
        t = parse_time(time)
        return 0.0 if t is None else (self.now - t).total_seconds()

    def enter(self, stage: Stage, reason: str, message: str, *, step: int = 0) -> None:
        self.set(current_step=step, stage=str(stage), stage_started_at=timestamp(self.now))
        self.set_analysis(passes=0, requests=0)
        self.emit("Normal", reason, message)

    def remember(self, ref: Ref | None, result: str, reason: str, message: str) -> None:
        if not ref:
            return
        entry = HistoryEntry(
            ref.version, ref.revision, result, reason, message, timestamp(self.now)
        )
        self.set(history=(*self.s.history, entry)[-MAX_HISTORY:])

    def cand_text(self) -> str:
        return _ref_text(self.s.candidate)

    # -- the tick ---------------------------------------------------------
    def run(self, obs: Observations) -> None:
        self.set(observed_generation=self.md.generation)
        if self.stage is None:
            self.start_initial()
        if obs.command is not None and obs.command.nonce != self.s.last_command_nonce:
            self.set(last_command_nonce=obs.command.nonce)
            self.command(obs.command, obs)
        self.follow_spec()
        self.advance(obs)
        self.s = _derive(self.md, self.s, self.now)

    def start_initial(self) -> None:
        self.set(
            stable=self.ref(), candidate=None, rollout_started_at=timestamp(self.now), degraded=None
        )
        self.enter(
            Stage.INITIAL, "Deploying", f"first revision: version {self.md.model.version} as stable"
        )

    def start_candidate(self) -> None:
        self.set(
            candidate=self.ref(),
            rollout_started_at=timestamp(self.now),
            analysis=Analysis(),
            paused=None,
            degraded=None,
            blocked_revision=None,
            gates=None,
            validation=None,
        )
        self.enter(
            Stage.STARTING,
            "RolloutStarted",
            f"rolling out {self.cand_text()} with strategy {self.md.strategy.type}",
        )

    def follow_spec(self) -> None:
        desired = self.md.revision
        stage = self.stage
        stable = self.s.stable.revision if self.s.stable else None
        if stage in (Stage.INITIAL, Stage.FAILED) and stable != desired:
            self.remember(self.s.stable, "Superseded", "SpecChanged", "replaced by a new spec")
            self.start_initial()
            return
        if desired == stable:
            if stage in ACTIVE_STAGES:
                self.remember(self.s.candidate, "Superseded", "SpecChanged", "spec back to stable")
                self.set(candidate=None, paused=None)
                self.enter(Stage.DONE, "Superseded", "spec returned to the stable revision")
            return
        if desired == self.s.blocked_revision:
            return  # rolled back: not retried until the spec changes or `retry`
        if stage in ACTIVE_STAGES:
            if self.s.candidate and self.s.candidate.revision == desired:
                return
            self.remember(self.s.candidate, "Superseded", "SpecChanged", "replaced by a newer spec")
        self.start_candidate()

    def advance(self, obs: Observations) -> None:
        stage = self.stage
        strategy = self.md.strategy
        if stage in (Stage.INITIAL, Stage.FAILED):
            if obs.stable_ready:
                self.remember(self.s.stable, "Promoted", "FirstRevision", "first revision")
                self.enter(Stage.DONE, "Available", f"version {self.md.model.version} is serving")
            elif stage is Stage.INITIAL and self.elapsed(self.s.rollout_started_at) > (
                strategy.progress_deadline
            ):
                msg = f"first revision not Ready within {strategy.progress_deadline:g}s"
                self.set(
                    degraded=Degraded("ProgressDeadlineExceeded", msg), stage=str(Stage.FAILED)
                )
                self.emit("Warning", "ProgressDeadlineExceeded", msg)
            return
        if stage not in ACTIVE_STAGES:
            return
        if obs.candidate_failure:
            self.rollback("CandidateFailing", obs.candidate_failure)
            return
        if obs.rollback_request:
            self.rollback("RollbackWebhook", obs.rollback_request)
            return
        if self.s.paused:
            return
        if stage is Stage.STARTING:
            if obs.candidate_ready:
                # Gates before any traffic; each bounds its own wait (timeout, failureLimit).
                if self.validation_passed(obs) and self.pre_rollout_passed(obs):
                    self.enter_first_stage()
            elif self.elapsed(self.s.rollout_started_at) > strategy.progress_deadline:
                why = f" ({obs.candidate_waiting})" if obs.candidate_waiting else ""
                self.rollback(
                    "ProgressDeadlineExceeded",
                    f"candidate not Ready within {strategy.progress_deadline:g}s{why}",
                )
            return
        if obs.analysis is not None and not self.record(obs.analysis):
            return
        # Autoscaled: the pods for the next weight must be ready before it moves.
        capacity = self.md.predictor.autoscaling is None or obs.candidate_ready
        if self.stage_complete() and capacity:
            self.next_stage(obs)

    def enter_first_stage(self) -> None:
        strategy = self.md.strategy
        if strategy.type == "Shadow":
            self.enter(Stage.SHADOW, "ShadowStarted", f"mirroring traffic to {self.cand_text()}")
        elif strategy.type == "Full":
            self.enter(Stage.BAKE, "Switched", f"all traffic on {self.cand_text()}, baking")
        else:
            self.enter_canary(0)

    def enter_canary(self, index: int) -> None:
        weight = self.md.strategy.steps[index].weight
        self.enter(
            Stage.CANARY,
            "CanaryStep",
            f"step {index + 1}/{len(self.md.strategy.steps)}: {weight}% to {self.cand_text()}",
            step=index,
        )

    def record(self, result: AnalysisResult) -> bool:
        """Count one analysis run; False when it ended the stage (rollback/pause)."""
        now = timestamp(self.now)
        measured = (*self.a.measurements, *(m.to_status(now) for m in result.measurements))
        self.set_analysis(last_run_at=now, measurements=measured[-MAX_MEASUREMENTS:])
        for m in result.dry_run_failures:
            self.emit("Warning", "DryRunMetricFailed", f"dry run, not counted: {m.message}")
        requests = self.a.requests + (result.requests or 0)
        if not result.counted and not self.md.strategy.analysis.gating_metrics:
            # Only dry-run metrics: measured and shown, never a pass, failure or pause.
            self.set_analysis(requests=requests)
            return True
        verdict = result.verdict
        if verdict is Verdict.FAIL:
            self.set_analysis(failures=self.a.failures + 1, inconclusive=0)
            failed = result.first_failure
            text = failed.message if failed else "analysis failed"
            if self.a.failures >= self.md.strategy.analysis.failure_limit:
                self.rollback("AnalysisFailed", text)
                return False
            self.emit("Warning", "AnalysisFailed", text)
            return True
        if verdict is Verdict.INCONCLUSIVE:
            self.set_analysis(inconclusive=self.a.inconclusive + 1)
            unsure = result.first_inconclusive
            text = unsure.message if unsure else "no metrics"
            count = self.a.inconclusive
            if count >= self.md.strategy.analysis.inconclusive_limit:
                self.pause(PAUSE_INCONCLUSIVE, f"{count} inconclusive runs: {text}")
                return False
            self.emit("Normal", "AnalysisInconclusive", text)
            return True
        self.set_analysis(passes=self.a.passes + 1, inconclusive=0, requests=requests)
        return True

    def stage_complete(self) -> bool:
        strategy = self.md.strategy
        stage = self.stage
        a = self.a
        judged = strategy.analysis.gating_metrics or of_type(strategy.webhooks, ROLLOUT)
        if judged and a.passes < 1:
            return False
        if stage is Stage.SHADOW:
            shadow = strategy.shadow
            if shadow is None:
                return True
            return (
                self.elapsed(self.s.stage_started_at) >= shadow.duration
                and a.requests >= shadow.min_requests
            )
        if stage is Stage.CANARY:
            index = self.s.current_step
            return self.elapsed(self.s.stage_started_at) >= strategy.steps[index].pause
        return self.elapsed(self.s.stage_started_at) >= strategy.bake_duration

    def validation_passed(self, obs: Observations) -> bool:
        """The validation set replayed on candidate and stable, before any traffic:
        a failure rolls back at once (nothing reached the candidate yet)."""
        if self.md.strategy.validation is None:
            return True
        v = self.s.validation or Validation()
        self.set(validation=v)
        if v.state == "Passed":
            return True
        if obs.validation is None:
            return False
        result = obs.validation
        v = replace(
            v, message=result.message, metrics=dict(result.metrics), time=timestamp(self.now)
        )
        if result.passed:
            self.set(validation=replace(v, state="Passed"))
            self.emit("Normal", "ValidationPassed", result.message)
            return True
        if not result.conclusive:
            v = replace(v, attempts=(v.attempts or 0) + 1)
            if (v.attempts or 0) < VALIDATION_ATTEMPTS:
                self.set(validation=v)
                self.emit("Warning", "ValidationInconclusive", result.message)
                return False
            result = ValidationOutcome(
                False, f"validation could not run {v.attempts} times: {result.message}"
            )
            v = replace(v, message=result.message)
        self.set(validation=replace(v, state="Failed"))
        self.rollback("ValidationFailed", result.message)
        return False

    def pre_rollout_passed(self, obs: Observations) -> bool:
        """Pre-rollout webhooks before any traffic: a failure counts like a failed
        analysis run (rollback at failureLimit), retried once per interval."""
        if not of_type(self.md.strategy.webhooks, PRE_ROLLOUT):
            return True
        pre = self.gates.pre_rollout or PreRollout()
        self.set(gates=replace(self.gates, pre_rollout=pre))
        if pre.state == "Passed":
            return True
        if obs.pre_rollout is None:
            return False
        pre = replace(pre, last_call_at=timestamp(self.now), message=obs.pre_rollout.message)
        if obs.pre_rollout.ok:
            self.set(gates=replace(self.gates, pre_rollout=replace(pre, state="Passed")))
            self.emit("Normal", "PreRolloutPassed", obs.pre_rollout.message)
            return True
        self.set(gates=replace(self.gates, pre_rollout=pre))
        self.set_analysis(failures=self.a.failures + 1)
        if self.a.failures >= self.md.strategy.analysis.failure_limit:
            self.rollback("PreRolloutFailed", obs.pre_rollout.message)
        else:
            self.emit("Warning", "PreRolloutFailed", obs.pre_rollout.message)
        return False

    def promotion_confirmed(self, obs: Observations) -> bool:
        """Confirm-promotion webhooks gate the promotion; analysis goes on meanwhile."""
        hooks = of_type(self.md.strategy.webhooks, CONFIRM_PROMOTION)
        if not hooks:
            return True
        self.set(gates=self.gates)
        waiting = self.gates.confirm_promotion
        if waiting and obs.confirmation is not None and obs.confirmation.ok:
            return True
        if not waiting:
            names = ", ".join(h.name for h in hooks)
            text = f"{self.cand_text()} passed; waiting for confirm-promotion: {names}"
            confirm = ConfirmPromotion(timestamp(self.now), text)
            self.set(gates=replace(self.gates, confirm_promotion=confirm))
            self.emit("Normal", "AwaitingConfirmation", text)
        elif obs.confirmation is not None:
            confirm = replace(waiting, message=obs.confirmation.message)
            self.set(gates=replace(self.gates, confirm_promotion=confirm))
        return False

    def next_stage(self, obs: Observations) -> None:
        stage = self.stage
        steps = self.md.strategy.steps
        if stage is Stage.SHADOW and steps:
            self.enter_canary(0)
        elif stage is Stage.CANARY and self.s.current_step + 1 < len(steps):
            self.enter_canary(self.s.current_step + 1)
        elif self.md.strategy.auto_promote:
            if self.promotion_confirmed(obs):
                self.promote("analysis passed")
        else:
            self.pause(
                PAUSE_AWAITING_PROMOTION, f"{self.cand_text()} passed; run `promote` to finish"
            )

    # -- transitions --------------------------------------------------------
    def promote(self, why: str) -> None:
        cand = self.s.candidate
        self.remember(cand, "Promoted", "Promoted", why)
        gates = None if self.s.gates is None else replace(self.s.gates, confirm_promotion=None)
        self.set(stable=cand, candidate=None, paused=None, gates=gates)
        self.enter(Stage.DONE, "Promoted", f"{_ref_text(cand)} promoted to stable: {why}")

    def rollback(self, reason: str, message: str) -> None:
        cand = self.s.candidate
        text = f"rolled back {_ref_text(cand)}: {message}"
        self.remember(cand, "RolledBack", reason, message)
        self.set(
            blocked_revision=cand.revision if cand else None,
            paused=None,
            degraded=Degraded(reason, text),
            stage=str(Stage.ROLLED_BACK),
            stage_started_at=timestamp(self.now),
        )
        self.emit("Warning", "RolledBack", text)

    def pause(self, reason: str, message: str) -> None:
        self.set(paused=Paused(reason, message, timestamp(self.now)))
        self.emit("Warning" if reason == PAUSE_INCONCLUSIVE else "Normal", "Paused", message)

    def command(self, cmd: Command, obs: Observations) -> None:
        stage = self.stage
        active = stage in ACTIVE_STAGES
        if cmd.action == "promote" and stage in ANALYSED_STAGES:
            self.promote("promoted by user")
        elif cmd.action == "abort" and active:
            self.rollback("Aborted", "aborted by user")
        elif cmd.action == "pause" and active and not self.s.paused:
            self.pause(PAUSE_MANUAL, "paused by user")
        elif cmd.action == "resume" and active and self.s.paused:
            self.set(paused=None)
            self.set_analysis(inconclusive=0)
            self.emit("Normal", "Resumed", "resumed by user")
        elif cmd.action == "retry" and stage in (Stage.ROLLED_BACK, Stage.FAILED):
            self.set(blocked_revision=None, degraded=None)
            self.emit("Normal", "Retry", "retry asked by user")
            if stage is Stage.FAILED:
                self.start_initial()
            else:
                # Same revision again: follow_spec starts it unless it is stable now.
                self.set(stage=str(Stage.DONE))
        else:
            known = cmd.action in COMMANDS
            why = (
                f"not applicable in phase {self.s.phase or 'Pending'}"
                if known
                else (f"unknown command (use one of {', '.join(COMMANDS)})")
            )
            self.emit("Warning", "CommandIgnored", f"{cmd.action}: {why}")


def pause_reason(status: Status) -> str | None:
    """Why a rollout waits for a person, or None: the reason counts only while the
    phase is Paused (a pause left in a finished stage is not waiting)."""
    if status.phase != str(Phase.PAUSED):
        return None
    return (status.paused.reason if status.paused else None) or "Unknown"


def _ref_text(ref: Ref | None) -> str:
    if ref is None:
        return "version None (None)"  # as the status said before a candidate existed
    return f"version {ref.version} ({ref.revision})"


def _derive(md: ModelDeployment, s: Status, now: dt.datetime) -> Status:
    """Phase, traffic and conditions follow from stage, step and pause."""
    if s.stage is None:
        raise ValueError("no stage: the machine sets one before deriving")
    stage = Stage(s.stage)
    paused = s.paused
    phase = Phase.PAUSED if paused and stage in ACTIVE_STAGES else _PHASE_OF_STAGE[stage]
    traffic = _traffic(md, s, stage)
    s = replace(s, phase=str(phase), traffic=traffic, canary_weight=traffic.canary_weight)
    degraded = s.degraded
    if stage is Stage.DONE:
        ready = ("True", "RolloutComplete", f"{_ref_text(s.stable)} serves all traffic")
    elif stage is Stage.INITIAL:
        ready = ("False", "Deploying", f"waiting for {_ref_text(s.stable)} to become Ready")
    elif stage in ACTIVE_STAGES:
        ready = ("False", "RolloutInProgress", f"rolling out {_ref_text(s.candidate)}")
    else:
        ready = ("False", str(phase), degraded.message if degraded else str(phase))
    confirm = s.gates.confirm_promotion if s.gates else None
    if paused and stage in ACTIVE_STAGES:
        progressing = ("False", paused.reason, paused.message)
    elif stage in ACTIVE_STAGES and confirm:
        progressing = ("True", "AwaitingConfirmation", confirm.message)
    elif stage in ACTIVE_STAGES or stage is Stage.INITIAL:
        progressing = ("True", f"{stage}", _stage_text(md, s, stage))
    else:
        progressing = ("False", str(phase), f"no rollout in progress ({phase})")
    if degraded and stage in (Stage.ROLLED_BACK, Stage.FAILED):
        deg = ("True", degraded.reason, degraded.message)
    elif paused and paused.reason == PAUSE_INCONCLUSIVE and stage in ACTIVE_STAGES:
        deg = ("True", PAUSE_INCONCLUSIVE, paused.message)
    else:
        deg = ("False", "AsExpected", "no problem detected")
    conditions = s.conditions
    for type_, (state, reason, message) in (
        ("Ready", ready),
        ("Progressing", progressing),
        ("Degraded", deg),
    ):
        new = Condition(type_, state, reason, message, md.generation, timestamp(now))
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


def _traffic(md: ModelDeployment, s: Status, stage: Stage) -> Traffic:
    def track(ref: Ref | None, name: str) -> Track:
        ref = ref or Ref()
        return Track(f"{md.name}-{name}", ref.version, ref.revision)

    tracks: dict[str, Track] = {}
    if s.stable:
        tracks["stable"] = track(s.stable, "stable")
    weight, mirror = 0, 0
    if stage is Stage.SHADOW:
        tracks["shadow"] = track(s.candidate, "shadow")
        mirror = md.strategy.shadow.mirror_percent if md.strategy.shadow else 100
    elif stage is Stage.CANARY:
        tracks["canary"] = track(s.candidate, "canary")
        weight = md.strategy.steps[s.current_step].weight
    elif stage is Stage.BAKE:
        tracks["canary"] = track(s.candidate, "canary")
        weight = 100
    return Traffic(weight, mirror, tracks)


def _set_condition(conditions: tuple[Condition, ...], new: Condition) -> tuple[Condition, ...]:
    """Replace the condition of `new`'s type; its transition time moves only with its status."""
    old = next((c for c in conditions if c.type == new.type), None)
    if old is None:
        return (*conditions, new)
    if old.status == new.status and old.last_transition_time:
        new = replace(new, last_transition_time=old.last_transition_time)
    return tuple(new if c is old else c for c in conditions)
