"""Which ModelDeployments keep the periodic tick (Kopf's timer filter)."""

from __future__ import annotations

from typing import Any

import pytest
from modeldeploy_operator import reconcile
from modeldeploy_operator.rollout import commands


def body(stage: str | None, *, generation: int = 3, observed: int = 3, **more: Any) -> dict:
    status: dict[str, Any] = (
        {} if stage is None else {"stage": stage, "observedGeneration": observed}
    )
    status.update(more.pop("status", {}))
    return {"metadata": {"generation": generation, **more}, "status": status}


@pytest.mark.parametrize("stage", ["Done", "RolledBack"])
def test_a_settled_object_has_no_tick(stage: str) -> None:
    assert not reconcile.needs_ticks(body(stage))


@pytest.mark.parametrize(
    "stage", [None, "Initial", "Starting", "Shadow", "Canary", "Bake", "Failed"]
)
def test_new_and_moving_objects_tick(stage: str | None) -> None:
    assert reconcile.needs_ticks(body(stage))


def test_an_unseen_spec_ticks_even_when_settled() -> None:
    assert reconcile.needs_ticks(body("Done", generation=4, observed=3))


def test_a_new_command_ticks_and_a_consumed_one_does_not() -> None:
    annotations = {commands.COMMAND_ANNOTATION: "retry:n2"}
    assert reconcile.needs_ticks(body("RolledBack", annotations=annotations))
    consumed = body("RolledBack", annotations=annotations, status={"lastCommandNonce": "n2"})
    assert not reconcile.needs_ticks(consumed)
