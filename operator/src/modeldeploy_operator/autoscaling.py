"""HorizontalPodAutoscalers that cooperate with rollouts (pure).

With `spec.predictor.autoscaling`, each active revision has an autoscaling/v2
HPA of its own name and the HPA owns the Deployment's replicas: the operator
never applies `spec.replicas` for such a revision (server-side apply would
otherwise take the field back). The operator steers only each HPA's
`minReplicas`, the floor, so that traffic never lands on too few pods:

- the candidate's floor is the share of the stable's pods that its traffic
  needs *next*: in STARTING the first stage's weight (or shadow's mirror
  percent), in a canary step the next step's weight, in the last step (and in
  Full's bake) 100%. The pods are there before the weight moves, and the
  rollout does not advance until that many are ready (`candidate_ready`).
  So on promotion the new stable already runs the old stable's replicas;
  its floor then drops to minReplicas and its HPA scales down on its metrics,
  behind the HPA's scale-down stabilisation window, never in one step.
- while a candidate is active, the stable's floor is its current replica
  count: its load falls as weight moves away, and an HPA following that
  would leave too few pods for a rollback, which sends all traffic back in
  one status write. After the rollout it is minReplicas again.
- a revision that stops being active loses its HPA before it is scaled to 0.
"""

from __future__ import annotations

import math
from typing import Any

from modeldeploy_operator import manifests
from modeldeploy_operator.spec import ACTIVE_STAGES, Autoscaling, ModelDeployment, Stage
from modeldeploy_operator.status import Status

# Per-pod request rate served by a custom-metrics adapter (e.g. prometheus-adapter
# with a rule over modeldeploy_requests_total); docs/operator.md has the rule.
RPS_METRIC = "modeldeploy_requests_per_second"


def needed(a: Autoscaling, stable_replicas: int, percent: int) -> int:
    """Pods for `percent` of the stable's traffic: within [minReplicas, maxReplicas], >= 1."""
    want = math.ceil(stable_replicas * percent / 100)
    return min(a.max_replicas, max(a.min_replicas, 1, want))


def heading_percent(md: ModelDeployment, status: Status) -> int:
    """Share of primary traffic the candidate carries now or in the stage it heads to."""
    strategy = md.strategy
    steps = [s.weight for s in strategy.steps]
    mirror = strategy.shadow.mirror_percent if strategy.shadow else 100
    stage = status.stage
    if status.promotion_requested_at:
        return 100  # a user's `promote`, held until these pods are ready
    if stage == Stage.STARTING:
        if strategy.type == "Shadow":
            return mirror
        return steps[0] if strategy.type == "Canary" and steps else 100
    if stage == Stage.SHADOW:
        return max(mirror, steps[0] if steps else 100)
    if stage == Stage.CANARY:
        index = status.current_step + 1
        return steps[index] if index < len(steps) else 100
    return 100  # bake, or anything about to be promoted


def floors(md: ModelDeployment, status: Status, stable_replicas: int) -> dict[str, int]:
    """minReplicas by revision for every active revision (empty without autoscaling)."""
    a = md.predictor.autoscaling
    if a is None or not status.stable:
        return {}
    base = max(a.min_replicas, 1)
    stable = status.stable.revision
    cand = status.candidate.revision if status.candidate else None
    if status.stage in ACTIVE_STAGES and cand:
        held = min(a.max_replicas, max(base, stable_replicas))
        return {stable: held, cand: needed(a, held, heading_percent(md, status))}
    return {stable: base}


def hpa(md: ModelDeployment, revision: str, minimum: int) -> dict[str, Any]:
    """The autoscaling/v2 HPA of one revision's Deployment."""
    a = md.predictor.autoscaling
    assert a is not None
    metrics: list[dict[str, Any]] = []
    if a.target_cpu is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": a.target_cpu},
                },
            }
        )
    if a.target_rps is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": RPS_METRIC},
                    "target": {"type": "AverageValue", "averageValue": _quantity(a.target_rps)},
                },
            }
        )
    lbls = manifests.labels(
        md, **{manifests.REVISION_LABEL: revision, manifests.COMPONENT_LABEL: "predictor"}
    )
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": revision},
        "minReplicas": minimum,
        "maxReplicas": a.max_replicas,
        "metrics": metrics,
    }
    if a.behavior:
        spec["behavior"] = a.behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": revision,
            "namespace": md.namespace,
            "labels": lbls,
            "ownerReferences": [manifests.owner_reference(md)],
        },
        "spec": spec,
    }


def _quantity(value: float) -> str:
    """A Kubernetes quantity for a rate: whole numbers plain, else in milli-units."""
    return str(int(value)) if value == int(value) else f"{round(value * 1000)}m"
