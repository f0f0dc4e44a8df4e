"""The crash-loop rule: CrashLoopBackOff counts only from `crashLoopRestarts` restarts."""

from __future__ import annotations

from typing import Any

import pytest
from md_factories import Driver
from modeldeploy_operator import podhealth


def pod(
    restarts: int, reason: str | None = "CrashLoopBackOff", *, init: bool = False
) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": reason}} if reason else {"running": {}}
    container = {
        "name": "predictor",
        "restartCount": restarts,
        "state": state,
        "lastState": {"terminated": {"exitCode": 3}} if restarts else {},
    }
    key = "initContainerStatuses" if init else "containerStatuses"
    return {"metadata": {"name": "fraud-abc-1"}, "status": {key: [container]}}


@pytest.mark.parametrize("restarts", [0, 1, 2])
def test_below_the_threshold_is_not_a_crash_loop(restarts):
    assert podhealth.crash_loop([pod(restarts)], 3) is None


@pytest.mark.parametrize("restarts", [3, 7])
def test_at_or_above_the_threshold_is_a_crash_loop(restarts):
    message = podhealth.crash_loop([pod(0, None), pod(restarts)], 3)
    assert message == (
        f"pod fraud-abc-1 container predictor: CrashLoopBackOff after {restarts} restarts, "
        "last exit code 3 (crashLoopRestarts 3)"
    )


def test_restarts_while_running_are_not_a_crash_loop():
    assert podhealth.crash_loop([pod(9, None)], 3) is None


def test_init_containers_count_too():
    assert podhealth.crash_loop([pod(1, init=True)], 1) is not None


def test_image_pull_is_left_to_the_deadline_but_named():
    pods = [pod(0, "ImagePullBackOff")]
    assert podhealth.crash_loop(pods, 1) is None
    assert podhealth.waiting_reason(pods) == "pod fraud-abc-1 container predictor ImagePullBackOff"
    assert podhealth.waiting_reason([pod(0, "ContainerCreating")]) is None
    assert podhealth.waiting_reason([]) is None


def test_threshold_comes_from_the_spec_with_a_default_of_3():
    assert Driver().md.strategy.crash_loop_restarts == 3
    body = {"type": "Canary", "canary": {"steps": [{"weight": 10}]}, "crashLoopRestarts": 5}
    assert Driver(body).md.strategy.crash_loop_restarts == 5


@pytest.mark.parametrize(("restarts", "phase"), [(2, "Canary"), (3, "RolledBack")])
def test_a_canary_pod_restarting_under_load_is_kept_until_the_threshold(restarts, phase):
    d = Driver()
    d.deploy_stable()
    d.change("2.0.0")
    d.tick(1, stable_ready=True, candidate_ready=True)
    assert d.phase == "Canary"
    failure = podhealth.crash_loop([pod(restarts)], d.md.strategy.crash_loop_restarts)
    d.tick(1, stable_ready=True, candidate_ready=False, candidate_failure=failure)
    assert d.phase == phase
    if phase == "RolledBack":
        degraded = d.condition("Degraded")
        assert degraded["reason"] == "CandidateFailing"
        assert "CrashLoopBackOff after 3 restarts" in degraded["message"]


def test_a_store_error_in_the_termination_message_is_named():
    """FallbackToLogsOnError puts the log tail in lastState; its last line is quoted."""
    said = (
        "INFO starting\n"
        "modeldeploy-predictor serve: s3://models/fraud/model.json: AccessDenied: Access Denied\n"
    )
    failing = pod(3)
    failing["status"]["containerStatuses"][0]["lastState"]["terminated"]["message"] = said
    tail = "; it said: modeldeploy-predictor serve: s3://models/fraud/model.json: AccessDenied"
    assert podhealth.crash_loop([failing], 3).endswith(tail + ": Access Denied")
    assert podhealth.waiting_reason([failing]) == (
        "pod fraud-abc-1 container predictor CrashLoopBackOff" + tail + ": Access Denied"
    )
    long = pod(1)
    long["status"]["containerStatuses"][0]["lastState"]["terminated"]["message"] = "x" * 900
    assert podhealth.crash_loop([long], 1).endswith("; it said: " + "x" * 400 + "...")


def test_running_but_never_ready_is_named_after_waiting_reasons():
    slow = pod(0, None)
    slow["status"]["containerStatuses"][0]["ready"] = False
    assert podhealth.waiting_reason([slow]) == (
        "pod fraud-abc-1 container predictor running but not ready"
    )
    assert podhealth.waiting_reason([slow, pod(0, "ImagePullBackOff")]).endswith("ImagePullBackOff")
    slow["status"]["containerStatuses"][0]["ready"] = True
    assert podhealth.waiting_reason([slow]) is None
