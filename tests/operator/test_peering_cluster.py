"""Two operator replicas with Kopf peering: one works, the other stands by.

The replicas share their arguments (as a Deployment's do): `--peering` and no
`--priority`, so each draws its own priority; the lower one must pause before
any ModelDeployment exists, never reconcile while the other lives, and take
over when the active one stops.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cluster_helpers import Env, OperatorProcess, apply_crd, manifest, wait_for
from kubernetes import client
from kubernetes.dynamic import DynamicClient

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
PEERING_CRDS = ROOT / "helm" / "modeldeploy" / "crds" / "kopf-peering.yaml"
PEERING = "modeldeploy"
STEPS = [{"weight": 10, "pause": "1s"}]


def apply_peering(api: client.ApiClient, namespace: str) -> None:
    """The chart's kopf.dev CRDs, and the KopfPeering object the replicas share."""
    crds = DynamicClient(api).resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    for body in yaml.safe_load_all(PEERING_CRDS.read_text()):
        crds.server_side_apply(body=body, field_manager="modeldeploy-tests", force_conflicts=True)
    custom = client.CustomObjectsApi(api)

    def created() -> bool:
        try:
            custom.create_namespaced_custom_object(
                "kopf.dev",
                "v1",
                namespace,
                "kopfpeerings",
                {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}},
            )
        except client.ApiException as exc:
            if exc.status == 404:  # the new CRD is not served yet
                return False
            raise
        return True

    wait_for(created, timeout=30, message="the KopfPeering object")


def priority(op: OperatorProcess) -> int | None:
    found = re.search(rf"peering '{PEERING}' with priority (\d+) \(random", op.output())
    return int(found.group(1)) if found else None


def peer_priorities(env: Env) -> set[int]:
    """Priorities of the live peers in the KopfPeering object's status."""
    body = env.custom.get_namespaced_custom_object(
        "kopf.dev", "v1", env.namespace, "kopfpeerings", PEERING
    )
    peers = (body.get("status") or {}).values()
    return {int(p["priority"]) for p in peers if p and p.get("lifetime", 0) > 0}


def paused(op: OperatorProcess) -> bool:
    # Each pause and resume is logged once, and every peer starts paused.
    text = op.output()
    return text.count("Pausing operations") == text.count("Resuming operations")


@pytest.fixture
def replicas(cluster, namespace) -> Iterator[tuple[Env, list[OperatorProcess]]]:
    api = cluster.api_client()
    apply_crd(api)
    apply_peering(api, namespace)
    env = Env(cluster, namespace, cluster.prometheus_url)
    ops = [
        OperatorProcess(cluster.kubeconfig, env.prometheus_url, namespace, "--peering", PEERING)
        for _ in range(2)
    ]
    try:
        yield env, ops
    finally:
        for op in ops:
            op.close()


def test_only_the_highest_priority_replica_acts_and_the_other_takes_over(replicas):
    env, ops = replicas
    for op in ops:
        op.start()
    for op in ops:
        op.wait_healthy()
    wait_for(lambda: all(priority(op) for op in ops), timeout=15, message="both priorities logged")
    active, standby = sorted(ops, key=priority, reverse=True)
    assert priority(active) != priority(standby)
    # Kopf starts a mandatory peer paused and logs only changes: the standby either
    # never resumed (silent) or resumed before the other appeared and paused again.
    try:
        wait_for(
            lambda: (
                peer_priorities(env) == {priority(active), priority(standby)} and paused(standby)
            ),
            timeout=30,
        )
    except TimeoutError as exc:
        raise AssertionError(
            f"standby not paused: peers={peer_priorities(env)}\n{standby.output()}"
        ) from exc
    assert "Pausing operations" not in active.output()

    env.operator = active
    env.apply(manifest("1.0.0", STEPS))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 Succeeded by the active replica")
    assert active.reconciles() >= 1
    assert standby.reconciles() == 0, standby.output()[-2000:]
    # Standing by, it still says it runs (the ModelDeployOperatorDown alert).
    assert "modeldeploy_operator_info{" in standby.metrics()

    active.stop()  # SIGTERM: Kopf withdraws its peering entry on the way out
    try:
        wait_for(lambda: not paused(standby), timeout=30)
    except TimeoutError as exc:
        raise AssertionError(f"standby did not resume:\n{standby.output()}") from exc
    env.operator = standby
    env.apply(manifest("2.0.0", STEPS))
    env.wait_status(
        lambda s: s.get("phase") == "Succeeded" and s["stable"]["version"] == "2.0.0",
        "v2 rolled out by the former standby",
    )
    assert standby.reconciles() >= 1
