"""spec.predictor.autoscaling: HPA manifests, floors through a rollout, the capacity gate."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from md_factories import Driver, md, result
from modeldeploy_operator import autoscaling, manifests, spec
from modeldeploy_operator import kube as kubemod
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.rollout import commands
from modeldeploy_operator.status import Status

IMAGE = "ghcr.io/modeldeploy/predictor:0.1.0"
STEPS = [{"weight": 10, "pause": "1m"}, {"weight": 50, "pause": "1m"}]


def scaled(version: str = "1.0.0", **auto: Any) -> spec.ModelDeployment:
    predictor = {"image": IMAGE, "autoscaling": {"minReplicas": 2, "maxReplicas": 12, **auto}}
    return md(version, predictor=predictor)


def test_parse_defaults_and_revision_is_not_changed_by_autoscaling():
    m = scaled()
    assert m.predictor.autoscaling == spec.Autoscaling(2, 12, 80, None)
    rps_only = scaled(targetRequestsPerSecond=50)
    assert rps_only.predictor.autoscaling.target_cpu is None
    assert rps_only.predictor.autoscaling.target_rps == 50
    assert m.revision == md("1.0.0", predictor={"image": IMAGE}).revision
    assert md().predictor.autoscaling is None


def test_hpa_manifest_targets_the_revision():
    m = scaled(targetCPUUtilizationPercentage=60, targetRequestsPerSecond=0.5)
    h = autoscaling.hpa(m, m.revision, 3)
    assert h["apiVersion"] == "autoscaling/v2" and h["metadata"]["name"] == m.revision
    assert h["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert h["metadata"]["labels"][manifests.REVISION_LABEL] == m.revision
    assert h["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": m.revision,
    }
    assert (h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) == (3, 12)
    cpu, rps = h["spec"]["metrics"]
    assert cpu["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    assert rps["pods"]["metric"]["name"] == autoscaling.RPS_METRIC
    assert rps["pods"]["target"] == {"type": "AverageValue", "averageValue": "500m"}


def test_hpa_behavior_is_passed_through_and_absent_by_default():
    assert "behavior" not in autoscaling.hpa(scaled(), "r", 2)["spec"]
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 30,
            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 15}],
        },
        "scaleUp": {"selectPolicy": "Max"},
    }
    m = scaled(behavior=behavior)
    assert autoscaling.hpa(m, m.revision, 2)["spec"]["behavior"] == behavior
    # Tuning the HPA is no model change: no new revision.
    assert m.revision == scaled().revision


def test_autoscaled_deployment_leaves_replicas_to_the_hpa():
    m = scaled()
    assert "replicas" not in manifests.revision_deployment(m, None, "stable")["spec"]
    assert manifests.revision_deployment(m, 2, "stable")["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("stable", "percent", "expected"),
    [(10, 10, 2), (10, 50, 5), (10, 100, 10), (30, 100, 12), (1, 10, 2), (7, 35, 3)],
)
def test_needed_is_the_weights_share_within_the_bounds(stable, percent, expected):
    a = spec.Autoscaling(min_replicas=2, max_replicas=12)
    assert autoscaling.needed(a, stable, percent) == expected


def test_needed_is_at_least_one_while_traffic_flows():
    a = spec.Autoscaling(min_replicas=0, max_replicas=5)
    assert autoscaling.needed(a, 1, 1) == 1


def autoscaled_canary() -> Driver:
    """A canary driver whose first revision, autoscaled 2..12, is stable."""
    d = Driver(strategy={"type": "Canary", "canary": {"steps": STEPS}})
    d.md = dataclasses.replace(
        d.md, predictor=dataclasses.replace(d.md.predictor, autoscaling=spec.Autoscaling(2, 12))
    )
    d.deploy_stable()
    return d


def test_floors_through_a_canary_rollout_and_back():
    d = autoscaled_canary()
    stable = d.status["stable"]["revision"]
    assert autoscaling.floors(d.md, d.state, 8) == {stable: 2}  # settled: the HPA decides
    d.md = dataclasses.replace(d.md, model=dataclasses.replace(d.md.model, version="2.0.0"))
    d.tick(1, stable_ready=True, candidate_ready=False)
    cand = d.status["candidate"]["revision"]
    assert d.stage == "Starting"
    # Starting: stable held at its 8, candidate sized for the first step (10% -> 1, min 2).
    assert autoscaling.floors(d.md, d.state, 8) == {stable: 8, cand: 2}
    d.tick(1, stable_ready=True, candidate_ready=True)
    assert d.stage == "Canary" and d.status["canaryWeight"] == 10
    # In step 1 the candidate already runs what step 2 (50%) needs.
    assert autoscaling.floors(d.md, d.state, 8) == {stable: 8, cand: 4}
    # Step 1 is complete, but the pods for 50% are not ready: the weight waits.
    d.tick(60, stable_ready=True, candidate_ready=False, analysis=result(Verdict.PASS))
    d.tick(1, stable_ready=True, candidate_ready=False)
    assert d.status["canaryWeight"] == 10
    d.tick(1, stable_ready=True, candidate_ready=True)
    assert d.status["canaryWeight"] == 50
    # Last step: the candidate runs all of the stable's pods before promotion.
    assert autoscaling.floors(d.md, d.state, 8) == {stable: 8, cand: 8}
    d.analyse(Verdict.PASS, 60)
    assert d.phase == "Succeeded" and d.status["stable"]["revision"] == cand
    assert autoscaling.floors(d.md, d.state, 8) == {cand: 2}


def test_floors_for_shadow_and_full():
    for strategy, expected in (
        ({"type": "Shadow", "shadow": {"mirrorPercent": 50}}, 5),
        ({"type": "Full"}, 10),
    ):
        m = dataclasses.replace(
            md("2.0.0", strategy=strategy),
            predictor=dataclasses.replace(md().predictor, autoscaling=spec.Autoscaling(1, 20)),
        )
        status = {
            "stage": "Starting",
            "stable": {"revision": "fraud-a"},
            "candidate": {"revision": "fraud-b"},
        }
        assert autoscaling.floors(m, Status.from_api(status), 10) == {
            "fraud-a": 10,
            "fraud-b": expected,
        }
        # shadow heads into promotion (no canary steps): all of the stable's pods
        assert (
            autoscaling.floors(m, Status.from_api({**status, "stage": "Shadow"}), 10)["fraud-b"]
            == 10
        )


def test_ready_at_least_the_floor():
    def dep(ready: int, updated: int, generation: int = 1, observed: int = 1) -> dict:
        return {
            "metadata": {"generation": generation},
            "spec": {"replicas": 5},
            "status": {
                "observedGeneration": observed,
                "readyReplicas": ready,
                "updatedReplicas": updated,
            },
        }

    assert kubemod.deployment_ready_at_least(dep(3, 3), 3)
    assert kubemod.deployment_ready_at_least(dep(5, 5), 3)  # the HPA asked for more
    assert not kubemod.deployment_ready_at_least(dep(2, 3), 3)
    assert not kubemod.deployment_ready_at_least(dep(3, 2), 3)
    assert not kubemod.deployment_ready_at_least(dep(3, 3, generation=2), 3)
    assert not kubemod.deployment_ready_at_least(None, 1)
    assert kubemod.replicas_of(dep(0, 0)) == 5 and kubemod.replicas_of(None) == 0


def test_a_users_promote_waits_for_the_candidates_pods_for_all_traffic():
    d = autoscaled_canary()
    stable = d.status["stable"]["revision"]
    d.md = dataclasses.replace(d.md, model=dataclasses.replace(d.md.model, version="2.0.0"))
    d.tick(1, stable_ready=True, candidate_ready=False)
    cand = d.status["candidate"]["revision"]
    d.tick(1, stable_ready=True, candidate_ready=True)
    assert d.status["canaryWeight"] == 10
    # Ready for step 2's floor (4 of 8): not for all traffic, so the promote is held.
    d.tick(1, stable_ready=True, candidate_ready=True, command=commands.Command("promote", "p"))
    assert d.phase == "Canary" and d.status["canaryWeight"] == 10
    assert "PromotionRequested" in d.reasons()
    assert d.condition("Progressing")["reason"] == "PromotionRequested"
    assert autoscaling.floors(d.md, d.state, 8) == {stable: 8, cand: 8}
    d.tick(1, stable_ready=True, candidate_ready=False)
    assert d.phase == "Canary"
    # The analysis does not move the weight meanwhile: the user asked for promotion.
    d.tick(60, stable_ready=True, candidate_ready=False, analysis=result(Verdict.PASS))
    assert d.status["canaryWeight"] == 10
    d.tick(1, stable_ready=True, candidate_ready=True)  # 8 ready against the raised floor
    assert d.phase == "Succeeded" and d.status["stable"]["revision"] == cand
    assert "promotionRequestedAt" not in d.status
    assert autoscaling.floors(d.md, d.state, 8) == {cand: 2}


def test_a_held_promote_ends_after_the_progress_deadline_or_with_an_abort():
    def held() -> Driver:
        d = autoscaled_canary()
        d.md = dataclasses.replace(d.md, model=dataclasses.replace(d.md.model, version="2.0.0"))
        d.tick(1, stable_ready=True, candidate_ready=True)
        d.tick(1, stable_ready=True, candidate_ready=True)
        d.tick(1, stable_ready=True, candidate_ready=True, command=commands.Command("promote", "p"))
        return d

    d = held()
    deadline = d.md.strategy.progress_deadline
    d.tick(deadline, stable_ready=True, candidate_ready=False)
    assert d.phase == "Canary"
    d.tick(1, stable_ready=True, candidate_ready=False)
    assert d.phase == "Succeeded" and "PromotedUnderCapacity" in d.reasons()

    d = held()
    d.tick(1, stable_ready=True, candidate_ready=False, command=commands.Command("abort", "a"))
    assert d.phase == "RolledBack" and "promotionRequestedAt" not in d.status
    assert "Promoted" not in d.reasons()
