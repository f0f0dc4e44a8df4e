"""The long chaos matrix (MODELDEPLOY_CHAOS_LONG=1, `make chaos`).

Each case: v1 serving, a good v2 rolling out under steady load through the
router, one fault in the middle; what must hold: the rollout ends where it
should (promoted, never rolled back without a failed metric), no step is
skipped or repeated, and users' failed requests are counted (zero where the
fault leaves a healthy replica to serve).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cluster_helpers import Env, wait_for
from dataplane import X, Y, analysis, fitted, load_rows, make_bundle, operator_env, router
from dataplane import manifest as dataplane_manifest
from faults import kill_pod_processes, running_pods
from kubernetes import client
from users import RATE, failed, failure_window

from demo.load import Load

pytestmark = [pytest.mark.cluster, pytest.mark.chaos, pytest.mark.chaos_long]

STEPS = [{"weight": 25, "pause": "15s"}, {"weight": 50, "pause": "15s"}]
PLAN: dict[str, Any] = {
    "type": "Canary",
    "canary": {"steps": STEPS},
    "analysis": {**analysis({"name": "error-rate", "max": 0.05}), "interval": "5s"},
}


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    yield from operator_env(cluster, namespace)


class Walk:
    """The sequence of (phase, step) the status went through, without repeats."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def __call__(self, st: dict[str, Any]) -> bool:
        here = (st.get("phase", ""), int(st.get("currentStep") or 0))
        if not self.seen or self.seen[-1] != here:
            self.seen.append(here)
        return st.get("phase") == "Succeeded" and st["stable"]["version"] == "2.0.0"

    def canary_steps(self) -> list[int]:
        return [step for phase, step in self.seen if phase == "Canary"]


def rollout_with_fault(
    env: Env,
    tmp_path,
    figures: dict[str, Any],
    fault: Callable[[Env], dict[str, Any] | None],
    plan: dict[str, Any] = PLAN,
    stable_replicas: int = 1,
) -> Walk:
    """v1, then a good v2 under load; `fault` runs once v2 is at canary step 1."""
    v1 = dataplane_manifest("1.0.0", make_bundle(tmp_path, "1.0.0", fitted(X, Y), X), plan)
    v1["spec"]["predictor"]["replicas"] = stable_replicas
    env.apply(v1)
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving", timeout=120)
    v2 = dataplane_manifest("2.0.0", make_bundle(tmp_path, "2.0.0", fitted(X, Y, C=0.5), X), plan)
    v2["spec"]["predictor"]["replicas"] = stable_replicas
    walk = Walk()
    with router(env) as url, Load(url, load_rows(), rate=RATE) as load:
        env.apply(v2)
        env.wait_status(lambda s: (walk(s), s.get("phase") == "Canary")[1], "v2 at step 1", 150)
        started = time.monotonic() - load.t0
        figures.update(fault(env) or {})
        figures["fault_at_s"] = round(started, 1)
        figures["fault_done_at_s"] = round(time.monotonic() - load.t0, 1)
        env.wait_status(walk, "v2 promoted after the fault", 240)
    answers = load.snapshot()
    figures.update(
        rate=RATE,
        requests=len(answers),
        failed=failed(answers),
        failure_window_s=failure_window(answers),
        # (seconds since the load started, status or -1 for a connection error)
        failures=[(round(t, 2), code) for t, code, _ in answers if code != 200][:20],
        walk=walk.seen,
    )
    st = env.status()
    assert st["analysis"]["failures"] == 0 and "RolledBack" not in env.events()
    assert walk.canary_steps() == [0, 1], walk.seen  # no step skipped or repeated
    return walk


def test_etcd_killed_for_20s_mid_canary(env, tmp_path, figures):
    def fault(e: Env) -> dict[str, Any]:
        with e.cluster.component_down("etcd"):
            time.sleep(20)  # the fault: no storage behind the API server
        return {"etcd_down_s": 20}

    rollout_with_fault(env, tmp_path, figures, fault)
    # Zero: the router routes from its watch cache. (2 failures once came from
    # the test's own Service forwarder waiting on the API for a new connection;
    # tests/devcluster/test_component_faults.py holds that fixed.)
    assert figures["failed"] == 0, figures


def test_kube_apiserver_killed_for_10s_mid_canary(env, tmp_path, figures):
    def fault(e: Env) -> dict[str, Any]:
        with e.cluster.component_down("kube-apiserver"):
            time.sleep(10)
        return {"api_down_s": 10}

    rollout_with_fault(env, tmp_path, figures, fault)
    assert figures["failed"] == 0, figures


def test_prometheus_restarted_with_its_data_lost(env, tmp_path, figures):
    def fault(e: Env) -> dict[str, Any]:
        e.cluster.stop_component("prometheus", wipe_data=True)
        time.sleep(5)
        e.cluster.start_component("prometheus")
        return {"prometheus_down_s": 5}

    rollout_with_fault(env, tmp_path, figures, fault)
    assert figures["failed"] == 0, figures


def test_operator_sigkilled_mid_canary(env, tmp_path, figures):
    def fault(e: Env) -> dict[str, Any]:
        e.operator.stop(signal.SIGKILL)
        time.sleep(3)
        e.operator.close()
        e.start_operator()
        return {"operator_down_s": 3}

    rollout_with_fault(env, tmp_path, figures, fault)
    assert figures["failed"] == 0, figures


def test_one_of_two_router_pods_sigkilled(env, tmp_path, figures):
    def fault(e: Env) -> dict[str, Any]:
        selector = "modeldeploy.io/name=fraud,app.kubernetes.io/component=router"
        pods = running_pods(e.api, e.namespace, selector)
        assert len(pods) == 2, pods  # the default: two router replicas
        killed_at = time.monotonic()
        kill_pod_processes(e.cluster, e.namespace, pods[0])
        wait_for(lambda: _ready_replicas(e, "fraud-router") == 2, 60, message="router pod back")
        return {"router_pod_back_s": round(time.monotonic() - killed_at, 1)}

    rollout_with_fault(env, tmp_path, figures, fault)


def test_one_of_two_stable_pods_sigkilled(env, tmp_path, figures):
    def fault(e: Env) -> dict[str, Any]:
        stable = e.status()["stable"]["revision"]
        pods = running_pods(e.api, e.namespace, f"modeldeploy.io/revision={stable}")
        killed_at = time.monotonic()
        kill_pod_processes(e.cluster, e.namespace, pods[0])
        _wait_restarted_and_ready(e, pods[0], stable)
        return {"stable_pod_back_s": round(time.monotonic() - killed_at, 1)}

    rollout_with_fault(env, tmp_path, figures, fault, stable_replicas=2)


def test_router_rolled_to_a_new_pod_template_while_traffic_flows(env, tmp_path, figures):
    def fault(e: Env) -> dict[str, Any]:
        apps = client.AppsV1Api(e.api)
        stamp = {"chaos.modeldeploy.io/restartedAt": str(time.time())}
        patch = {"spec": {"template": {"metadata": {"annotations": stamp}}}}
        started = time.monotonic()
        apps.patch_namespaced_deployment("fraud-router", e.namespace, patch)

        def rolled() -> bool:
            dep = apps.read_namespaced_deployment("fraud-router", e.namespace)
            s = dep.status
            return (
                s.observed_generation == dep.metadata.generation
                and (s.updated_replicas or 0) == 2
                and (s.ready_replicas or 0) == 2
                and (s.replicas or 0) == 2
            )

        wait_for(rolled, 120, message="router rolled out")
        return {"router_rollout_s": round(time.monotonic() - started, 1)}

    rollout_with_fault(env, tmp_path, figures, fault)


def _wait_restarted_and_ready(e: Env, pod: str, deployment: str) -> None:
    """Until the killed pod's container has restarted and the Deployment is whole again."""
    core = client.CoreV1Api(e.api)

    def restarted() -> bool:
        statuses = core.read_namespaced_pod(pod, e.namespace).status.container_statuses or []
        return any(c.restart_count > 0 for c in statuses)

    wait_for(restarted, 60, message=f"{pod} restarted")
    wait_for(lambda: _ready_replicas(e, deployment) == 2, 90, message=f"{deployment} whole again")


def _ready_replicas(e: Env, deployment: str) -> int:
    dep = client.AppsV1Api(e.api).read_namespaced_deployment(deployment, e.namespace)
    return dep.status.ready_replicas or 0
