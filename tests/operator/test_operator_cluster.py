"""The operator process against the real API server, with revisions of 0 replicas.

Zero replicas make every revision Ready as soon as the deployment controller
has seen it, and no analysis metrics make steps advance on time alone; so
these tests exercise the operator's own machinery (children, status, events,
commands, restart) on the local cluster without the data plane. Analysis
against Prometheus is covered with Prometheus unreachable: (f) never promotes.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_helpers import GROUP, PLURAL, VERSION, Env, apply_crd, manifest, wait_for
from kubernetes import client

pytestmark = pytest.mark.cluster


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    apply_crd(cluster.api_client())
    e = Env(cluster, namespace, cluster.prometheus_url)
    yield e
    if e.operator is not None:
        e.operator.close()


def stable_deployed(env: Env, steps: list[dict[str, Any]], **strategy: Any) -> None:
    env.apply(manifest("1.0.0", steps, **strategy))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 Succeeded")


def test_canary_walks_every_step_and_is_ready(env):
    steps = [{"weight": 10, "pause": "1s"}, {"weight": 50, "pause": "1s"}]
    env.start_operator()
    stable_deployed(env, steps)
    ready = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(env.cluster.kubeconfig),
            "-n",
            env.namespace,
            "wait",
            "--for=condition=Ready",
            "md/fraud",
            "--timeout=30s",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ready.returncode == 0, ready.stderr
    env.apply(manifest("2.0.0", steps))
    seen = set()

    def promoted(st: dict[str, Any]) -> bool:
        if st.get("phase") == "Canary":
            seen.add(st["canaryWeight"])
        return st.get("phase") == "Succeeded" and st["stable"]["version"] == "2.0.0"

    st = env.wait_status(promoted, "v2 promoted")
    assert seen <= {10, 50} and seen, seen
    assert [h["result"] for h in st["history"]] == ["Promoted", "Promoted"]
    assert st["traffic"]["tracks"].keys() == {"stable"}
    # Owned objects: both revisions (the old one at 0), track Services, router, user Service.
    apps, core = client.AppsV1Api(env.api), client.CoreV1Api(env.api)
    deps = {d.metadata.name: d for d in apps.list_namespaced_deployment(env.namespace).items}
    assert st["stable"]["revision"] in deps and "fraud-router" in deps
    assert len([n for n in deps if n != "fraud-router"]) == 2
    svcs = {s.metadata.name for s in core.list_namespaced_service(env.namespace).items}
    assert {"fraud", "fraud-stable", "fraud-canary", "fraud-shadow"} <= svcs
    owner = deps["fraud-router"].metadata.owner_references[0]
    assert owner.kind == "ModelDeployment" and owner.name == "fraud"
    # A transition's Event is posted right after the status write that records it.
    wanted = {"RolloutStarted", "CanaryStep", "Promoted"}
    wait_for(lambda: wanted <= set(env.events()), 30, message=f"Events {wanted}")


def test_operator_killed_mid_canary_resumes_at_the_same_step(env):
    """(e) kill -9 at step 2; a new process keeps weight, step and its start time."""
    steps = [{"weight": 10, "pause": "1s"}, {"weight": 50, "pause": "1h"}, {"weight": 90}]
    env.start_operator()
    stable_deployed(env, steps)
    env.apply(manifest("2.0.0", steps))
    before = env.wait_status(lambda s: s.get("currentStep") == 1, "step 2 reached")
    env.operator.stop(signal.SIGKILL)
    env.operator.close()
    env.start_operator()
    env.operator.wait_healthy()
    # Let the new process reconcile several times before looking again.
    wait_for(lambda: env.operator.reconciles() >= 5, timeout=30, message="5 reconciles")
    after = env.status()
    assert after["currentStep"] == 1 and after["canaryWeight"] == 50, after
    assert after["stageStartedAt"] == before["stageStartedAt"]
    done = env.plugin("promote", "fraud")
    assert done.returncode == 0, done.stderr
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "promoted by the plugin")


def test_commands_pause_resume_abort_retry_through_the_plugin(env):
    steps = [{"weight": 10, "pause": "1h"}]
    env.start_operator()
    stable_deployed(env, steps)
    env.apply(manifest("2.0.0", steps))
    env.wait_status(lambda s: s.get("phase") == "Canary", "canary")
    out = env.plugin("pause", "fraud")
    assert out.returncode == 0 and "is Paused" in out.stdout, out.stderr
    assert env.plugin("resume", "fraud").returncode == 0
    assert env.status()["phase"] == "Canary"
    out = env.plugin("abort", "fraud")
    assert "is RolledBack" in out.stdout, out.stderr
    st = env.status()
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "Aborted"
    apps = client.AppsV1Api(env.api)
    cand = st["candidate"]["revision"]
    wait_for(
        lambda: apps.read_namespaced_deployment(cand, env.namespace).spec.replicas == 0,
        timeout=10,
        message="candidate scaled to 0",
    )
    assert env.plugin("retry", "fraud").returncode == 0
    env.wait_status(lambda s: s.get("phase") == "Canary", "canary again after retry")
    text = env.plugin("status", "fraud").stdout
    assert "Phase:      Canary" in text and "Candidate:  2.0.0" in text


def test_prometheus_unreachable_pauses_and_never_promotes(env):
    """(f) no data is never success: the rollout pauses with a clear condition."""
    env.prometheus_url = "http://127.0.0.1:9"  # discard port: nothing answers
    steps = [{"weight": 10, "pause": "1s"}]
    analysis = {
        "interval": "1s",
        "inconclusiveLimit": 2,
        "metrics": [{"name": "error-rate", "max": 0.01}],
    }
    env.start_operator()
    stable_deployed(env, steps, analysis=analysis)
    env.apply(manifest("2.0.0", steps, analysis=analysis))
    st = env.wait_status(lambda s: s.get("phase") == "Paused", "paused on inconclusive")
    progressing = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "InconclusiveAnalysis"
    assert "Prometheus unreachable" in progressing["message"]
    assert st["stable"]["version"] == "1.0.0" and st["canaryWeight"] == 10
    assert all(m["verdict"] == "Inconclusive" for m in st["analysis"]["measurements"])
    # What the ModelDeploymentPausedInconclusive alert selects.
    metrics = env.operator.metrics()
    assert 'modeldeploy_operator_paused_rollouts{reason="InconclusiveAnalysis"} 1.0' in metrics
    assert 'modeldeploy_operator_paused_rollouts{reason="ManualPause"} 0.0' in metrics


def test_operator_health_and_metrics(env):
    env.start_operator().wait_healthy()
    stable_deployed(env, [{"weight": 10}])

    # The status write that the test saw comes before the operator updates its
    # gauges in the same reconcile, so wait for the gauge rather than race it.
    def metrics_with_succeeded() -> str | None:
        text = env.operator.metrics()
        return text if 'modeldeploy_operator_rollouts{phase="Succeeded"} 1.0' in text else None

    metrics = wait_for(
        metrics_with_succeeded, timeout=10, message="rollouts gauge shows the Succeeded phase"
    )
    assert re.search(r'^modeldeploy_operator_info\{version="[^"]+"\} 1\.0$', metrics, re.M)
    assert env.operator.reconciles() >= 1


def test_settled_objects_have_no_timer_nor_finalizer_and_deletion_is_forgotten(env):
    """A finished rollout needs no periodic reconcile: Kopf's timer (and with it
    the finalizer) exists only while a rollout is unsettled."""
    env.start_operator().wait_healthy()
    steps = [{"weight": 10, "pause": "1h"}]
    stable_deployed(env, steps)
    wait_for(
        lambda: not env.get()["metadata"].get("finalizers"), timeout=30, message="no finalizer"
    )
    before = env.operator.reconciles()
    env.apply(manifest("2.0.0", steps))
    env.wait_status(lambda s: s.get("phase") == "Canary", "canary")
    assert env.get()["metadata"].get("finalizers") == ["modeldeploy.io/finalizer"]
    wait_for(
        lambda: env.operator.reconciles() >= before + 4, timeout=30, message="timer reconciles"
    )
    assert env.plugin("abort", "fraud").returncode == 0
    env.wait_status(lambda s: s.get("phase") == "RolledBack", "rolled back")
    wait_for(
        lambda: not env.get()["metadata"].get("finalizers"), timeout=30, message="timer stopped"
    )
    # Kopf drops the finalizer only once no timer matches the object any more.
    env.custom.delete_namespaced_custom_object(GROUP, VERSION, env.namespace, PLURAL, "fraud")

    def forgotten() -> bool:
        return 'modeldeploy_operator_rollouts{phase="RolledBack"} 0.0' in env.operator.metrics()

    wait_for(forgotten, timeout=30, message="the deleted object gone from the phase gauge")
