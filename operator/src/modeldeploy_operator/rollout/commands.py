"""Manual commands: the `modeldeploy.io/command` annotation, `ACTION:NONCE`.

`kubectl modeldeploy promote|abort|pause|resume|retry` writes the annotation
(plugin.py); the operator never writes `spec`, so the annotation stays and
every tick reads it again. Each nonce is therefore acted on once, and
`status.lastCommandNonce` remembers the last one consumed. A command that
does not apply in the current stage changes nothing and says so in a
`CommandIgnored` Event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modeldeploy_operator.rollout import pauses, timing
from modeldeploy_operator.rollout.tick import Tick
from modeldeploy_operator.spec import ACTIVE_STAGES, ANALYSED_STAGES, Stage
from modeldeploy_operator.status import Status

COMMAND_ANNOTATION = "modeldeploy.io/command"
COMMANDS = ("promote", "abort", "pause", "resume", "retry")


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


def from_annotations(annotations: Mapping[str, str]) -> Command | None:
    """The command an object's annotations carry, consumed or not."""
    return parse_command(annotations.get(COMMAND_ANNOTATION))


def is_new(command: Command | None, status: Status) -> bool:
    """Whether `command` is one the rollout has not acted on yet."""
    return command is not None and command.nonce != status.last_command_nonce


def consume(t: Tick, command: Command | None) -> None:
    """Act on a new command once, and remember its nonce."""
    if command is None or not is_new(command, t.s):
        return
    t.set(last_command_nonce=command.nonce)
    _apply(t, command)


def _apply(t: Tick, cmd: Command) -> None:
    stage = t.stage
    active = stage in ACTIVE_STAGES
    if cmd.action == "promote" and stage in ANALYSED_STAGES:
        if t.md.predictor.autoscaling is None:
            t.promote("promoted by user")
        else:
            # All traffic moves at once: the candidate's floor rises to the stable's
            # pods first (autoscaling.heading_percent) and the machine promotes once
            # they are ready, so the handover has no dip in capacity.
            t.set(promotion_requested_at=timing.timestamp(t.now))
            t.emit(
                "Normal",
                "PromotionRequested",
                f"promote asked: waiting for {t.candidate_text()} to scale to the stable's pods",
            )
    elif cmd.action == "abort" and active:
        t.rollback("Aborted", "aborted by user")
    elif cmd.action == "pause" and active and not t.s.paused:
        t.pause(pauses.PAUSE_MANUAL, "paused by user")
    elif cmd.action == "resume" and active and t.s.paused:
        t.set(paused=None)
        t.set_analysis(inconclusive=0)
        t.emit("Normal", "Resumed", "resumed by user")
    elif cmd.action == "retry" and stage in (Stage.ROLLED_BACK, Stage.FAILED):
        t.set(blocked_revision=None, degraded=None)
        t.emit("Normal", "Retry", "retry asked by user")
        if stage is Stage.FAILED:
            t.start_initial()
        else:
            # Same revision again: the machine's spec-following starts it unless it is stable now.
            t.set(stage=str(Stage.DONE))
    else:
        known = cmd.action in COMMANDS
        why = (
            f"not applicable in phase {t.s.phase or 'Pending'}"
            if known
            else (f"unknown command (use one of {', '.join(COMMANDS)})")
        )
        t.emit("Warning", "CommandIgnored", f"{cmd.action}: {why}")
