"""The typed status and its API form: a status written by the previous operator loads,
and what is written back keeps every field (unknown ones too) and never writes null."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from md_factories import Driver
from modeldeploy_operator import kube
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.rollout import timing
from modeldeploy_operator.status import Analysis, Status

# Statuses the dict-based state machine (before the typed Status) wrote, with the
# announce.py outbox, captured from its unit-test scenarios: every field and sub-field.
CAPTURED = json.loads((Path(__file__).parent / "data" / "status_v0_1_0.json").read_text())


def _as_stored(value: Any) -> Any:
    """What the API server keeps after a merge patch: nulls in objects delete the key
    (lists are replaced whole, so a null inside a list item stays)."""
    if isinstance(value, dict):
        return {k: _as_stored(v) for k, v in value.items() if v is not None}
    return value


@pytest.mark.parametrize("stored", CAPTURED, ids=lambda s: f"{s['stage']}-{s['phase']}")
def test_a_status_of_the_previous_operator_loads_and_writes_back_unchanged(stored):
    typed = Status.from_api(stored)
    assert typed.to_api() == _as_stored(stored)
    assert kube.merge_patch(_as_stored(stored), typed.to_api()) == {}  # no write
    assert Status.from_api(typed.to_api()) == typed


def test_captured_statuses_cover_every_field():
    keys = set().union(*CAPTURED)
    assert keys >= {
        "stage", "phase", "stable", "candidate", "blockedRevision", "analysis", "paused",
        "degraded", "gates", "validation", "history", "traffic", "conditions",
        "lastCommandNonce", "pendingEvents", "eventSeq",
    }  # fmt: skip


def test_unknown_fields_round_trip_and_kopf_is_dropped():
    stored = {
        **CAPTURED[0],
        "futureField": {"a": [1, 2]},
        "kopf": {"progress": {}},
    }
    out = Status.from_api(stored).to_api()
    assert out["futureField"] == {"a": [1, 2]} and "kopf" not in out


def test_an_older_status_without_counters_reads_them_as_zero():
    typed = Status.from_api({"stage": "Canary", "analysis": {"passes": 1}})
    assert typed.analysis == Analysis(passes=1)
    assert typed.to_api()["analysis"] == {
        "passes": 1,
        "requests": 0,
        "failures": 0,
        "inconclusive": 0,
        "measurements": [],
    }


def test_a_rollout_continues_from_a_captured_status():
    """A canary step written by the previous operator: the typed machine resumes it
    (same step, no restart) and promotes after its passes."""
    d = Driver()
    d.change("2.0.0")
    stored = next(
        s
        for s in CAPTURED
        if s["stage"] == "Canary"
        and not s.get("paused")
        and s["candidate"]["revision"] == d.md.revision
        and s["currentStep"] == 0
    )
    d.state = Status.from_api(stored)
    d.now = timing.parse_time(stored["stageStartedAt"])
    d.tick(1, candidate_ready=True, stable_ready=True)
    assert d.stage == "Canary" and d.status["currentStep"] == 0
    assert not {e.reason for e in d.events} & {"RolloutStarted", "CanaryStep"}
    d.analyse(Verdict.PASS, seconds=60)
    assert d.status["currentStep"] == 1 and d.status["canaryWeight"] == 50


def test_clearing_a_field_deletes_it_through_the_merge_patch():
    stored = next(s for s in CAPTURED if s.get("paused"))
    resumed = Status.from_api(stored)
    patch = kube.merge_patch(_as_stored(stored), replace(resumed, paused=None).to_api())
    assert patch == {"paused": None}
