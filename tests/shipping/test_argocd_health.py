"""The Argo CD health check (Lua) maps ModelDeployment statuses correctly.

Runs the chart's files/argocd-health.lua in a real Lua 5.1 interpreter (lupa embeds the
same language version as Argo CD's gopher-lua) against sample objects.
"""

from __future__ import annotations

from typing import Any

import pytest
from lupa import lua51 as lupa

from . import chart

SCRIPT = (chart.CHART / "files" / "argocd-health.lua").read_text()


def health(obj: dict[str, Any]) -> dict[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT)
    return dict(result.items())


def md(generation: int = 2, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": "ml", "generation": generation},
    }
    if status:
        obj["status"] = {"observedGeneration": generation, **status}
    return obj


def cond(kind: str, status: str, message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": kind, "message": message}


CASES = [
    pytest.param(md(), "Progressing", "Waiting for the operator", id="no-status"),
    pytest.param(
        {**md(phase="Succeeded"), "status": {"phase": "Succeeded", "observedGeneration": 1}},
        "Progressing",
        "observe generation 2",
        id="generation-not-observed",
    ),
    pytest.param(
        md(phase="Canary", canaryWeight=10, candidate={"version": "2.0.0"}),
        "Progressing",
        "Canary: candidate 2.0.0 at 10% of traffic",
        id="canary",
    ),
    pytest.param(
        md(phase="Shadow", candidate={"version": "2.0.0"}), "Progressing", "Shadow", id="shadow"
    ),
    pytest.param(md(phase="Pending"), "Progressing", "Pending", id="pending"),
    pytest.param(
        md(
            phase="Succeeded",
            stable={"version": "2.0.0"},
            conditions=[cond("Ready", "True"), cond("Degraded", "False")],
        ),
        "Healthy",
        "Serving version 2.0.0",
        id="succeeded",
    ),
    pytest.param(
        md(phase="Succeeded", conditions=[cond("Ready", "False", "1/2 predictor pods ready")]),
        "Progressing",
        "1/2 predictor pods ready",
        id="succeeded-not-ready",
    ),
    pytest.param(
        md(
            phase="Paused",
            paused={"reason": "InconclusiveAnalysis", "message": "3 runs without data"},
            # The operator also sets Degraded for this pause; Suspended wins.
            conditions=[
                cond("Ready", "False"),
                cond("Degraded", "True", "3 runs without data"),
            ],
        ),
        "Suspended",
        "InconclusiveAnalysis: 3 runs without data",
        id="paused-inconclusive",
    ),
    pytest.param(md(phase="Paused"), "Suspended", "paused", id="paused-no-detail"),
    pytest.param(
        md(
            phase="RolledBack",
            conditions=[cond("Degraded", "True", "error-rate 0.2 > 0.01: rolled back")],
        ),
        "Degraded",
        "error-rate 0.2 > 0.01",
        id="rolled-back",
    ),
    pytest.param(md(phase="Failed"), "Degraded", "Rollout Failed", id="failed"),
    pytest.param(
        md(phase="Canary", conditions=[cond("Degraded", "True", "router has no endpoints")]),
        "Degraded",
        "router has no endpoints",
        id="degraded-condition-wins",
    ),
    pytest.param(md(phase="Exploded"), "Unknown", "Exploded", id="unknown-phase"),
]


@pytest.mark.parametrize(("obj", "status", "message"), CASES)
def test_health(obj: dict[str, Any], status: str, message: str) -> None:
    result = health(obj)
    assert result["status"] == status, result
    assert message in result["message"], result
