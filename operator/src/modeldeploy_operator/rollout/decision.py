"""What one tick of the state machine returns: the next status and its Events."""

from __future__ import annotations

from dataclasses import dataclass, field

from modeldeploy_operator.status import Status


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
