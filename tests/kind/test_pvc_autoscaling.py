"""Bundles from a PVC and CPU autoscaling with metrics-server, under a real kubelet.

One scenario proves both (one operator install, one rollout): iris 1.0.0 and
2.0.0 sit on a PersistentVolumeClaim (`pvc://bundles/iris/VERSION`), the
predictor autoscales on CPU (metrics-server, deployed by hack/e2e-kind.sh),
and a canary to 2.0.0 under load through the router Service makes an HPA add
pods beyond its floor; after promotion, with the load down to a trickle, the
new stable's HPA scales back to minReplicas. No request fails throughout.

kind here has no dynamic provisioner (the locally built node image carries
no local-path provisioner), so the test binds its claim to a hostPath PV of
its own, and a root loader pod copies the bundles in with `kubectl cp`.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from modeldeploy_devcluster import forward

from demo import models
from demo import scenario as demo_scenario
from demo.load import Load
from tests.shipping import chart, scenario

pytestmark = pytest.mark.kind
PROMETHEUS = "http://prometheus.monitoring.svc:9090"
CLAIM = "bundles"
VERSIONS = ("1.0.0", "2.0.0")
# CPU request and target of a predictor, and the canary's load. Measured on
# kind here: a predictor uses 4-6m with a trickle (probes, scrapes) and
# 20-30m serving 20 req/s, half of the demo's load. An HPA adds a pod when one
# uses more than target plus 10 % tolerance, and goes from two pods to one
# when their sum is at most the target. At the demo's 40 req/s and a 50 %
# target (27.5m up) a scale-up hardly ever came. At 60 req/s (30 per revision,
# about 35m a pod) and 45 % (24.75m up, 22.5m down; two near-idle pods use
# 12-16m) both directions are clear; more load only overloads the 2-core node.
CPU_REQUEST = "50m"
CANARY_LOAD_RATE = 1.5 * demo_scenario.LOAD_RATE
AUTOSCALING = {
    "minReplicas": 1,
    "maxReplicas": 2,
    "targetCPUUtilizationPercentage": 45,
    # Kubernetes waits 5 min before removing pods; users tune it, so does the test.
    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 20}},
}


def _json(kube: scenario.Kube, *args: str) -> Any:
    return json.loads(kube.run(*args, "-o", "json").stdout)


def _status(kube: scenario.Kube, ns: str) -> dict[str, Any]:
    return _json(kube, "get", "md", models.NAME, "-n", ns).get("status") or {}


def _hpas(kube: scenario.Kube, ns: str) -> list[dict[str, Any]]:
    return _json(kube, "get", "hpa", "-n", ns)["items"]


def _events(kube: scenario.Kube, ns: str) -> list[str]:
    items = _json(kube, "get", "events", "-n", ns, "--sort-by=.lastTimestamp")["items"]
    return [f"{e['involvedObject']['name']} {e['reason']}: {e['message']}" for e in items[-15:]]


def _events_of(kube: scenario.Kube, ns: str, reason: str) -> list[dict[str, Any]]:
    return _json(kube, "get", "events", "-n", ns, f"--field-selector=reason={reason}")["items"]


def _hostpath_volume(ns: str) -> dict[str, Any]:
    """A PV on the node's disk, reserved for the namespace's claim."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{ns}-{CLAIM}"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": ns, "name": CLAIM},
            "hostPath": {"path": f"/var/local/modeldeploy-e2e/{ns}", "type": "DirectoryOrCreate"},
        },
    }


def _claim(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": ns},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": f"{ns}-{CLAIM}",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


def _loader(ns: str, image: str) -> dict[str, Any]:
    """A root pod with the claim mounted: it only waits while bundles are copied in."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "loader", "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsUser": 0},
            "containers": [{
                "name": "loader", "image": image, "imagePullPolicy": "Never",
                "command": ["python3", "-c", "import time; time.sleep(600)"],
                "volumeMounts": [{"name": "bundles", "mountPath": "/bundles"}],
            }],
            "volumes": [{"name": "bundles", "persistentVolumeClaim": {"claimName": CLAIM}}],
        },
    }  # fmt: skip


def _manifest(ns: str, version: str) -> dict[str, Any]:
    strategy = {
        "type": "Canary",
        # The test promotes once the HPA has scaled up: the pause only has to outlast that.
        "canary": {"steps": [{"weight": 50, "pause": "10m"}]},
        "analysis": demo_scenario.analysis({"name": "error-rate", "max": 0.05}),
    }
    body = demo_scenario.manifest(version, f"pvc://{CLAIM}/iris/{version}", strategy)
    body["metadata"]["namespace"] = ns
    predictor = body["spec"]["predictor"]
    del predictor["replicas"]
    predictor["resources"] = {"requests": {"cpu": CPU_REQUEST, "memory": "128Mi"}}
    predictor["autoscaling"] = AUTOSCALING
    return body


@pytest.fixture
def pvc_namespace(kube: scenario.Kube, kind_helm: chart.Helm) -> Iterator[str]:
    """A namespace watched by the chart's operator, with both bundles on its claim."""
    ns = kube.create_namespace("kind-pvc")
    volume = _hostpath_volume(ns)
    try:
        release = scenario.release_name()
        values = scenario.namespaced_values([ns], prometheus={"url": PROMETHEUS}, tick=1)
        scenario.install(kind_helm, release, ns, values)
        kube.apply([volume, _claim(ns), _loader(ns, demo_scenario.IMAGE)])
        kube.run("-n", ns, "wait", "--for=condition=Ready", "pod/loader", "--timeout=120s")
        kube.run("-n", ns, "exec", "loader", "--", "mkdir", "-p", "/bundles/iris")
        trained = [v for v in models.train() if v.version in VERSIONS]
        with tempfile.TemporaryDirectory() as out:
            for version, path in models.bundle_all(trained, Path(out)).items():
                kube.run("cp", str(path), f"{ns}/loader:/bundles/iris/{version}", timeout=120)
        kube.run("-n", ns, "delete", "pod", "loader", "--grace-period=0", "--wait=false")
        yield ns
    finally:
        kube.delete_namespace(ns)
        kube.run("delete", "pv", volume["metadata"]["name"], "--wait=false", check=False)


def _metric_scale_ups(kube: scenario.Kube, ns: str) -> list[tuple[str, str]]:
    """(HPA, message) of every scale-up the HPA controller made on its metrics.

    The HPA controller's own record, not its status: during a canary the
    operator raises each HPA's floor to the stable's current replicas (for a
    rollback's capacity), so `desiredReplicas > minReplicas` holds only until
    the operator's next tick, and a poll of the status misses it. A rescale on
    a metric says "<metric> above target"; one up to a raised floor says
    "below Spec.MinReplicas".
    """
    rescales = "involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale"
    items = _json(kube, "get", "events", "-n", ns, "--field-selector", rescales)["items"]
    on_cpu = ("cpu resource utilization", "above target")
    return [
        (e["involvedObject"]["name"], e["message"])
        for e in items
        if all(words in e["message"] for words in on_cpu)
    ]


def test_pvc_bundles_and_cpu_autoscaling_through_a_canary(
    kube: scenario.Kube, pvc_namespace: str, kind_kubeconfig: str
) -> None:
    ns = pvc_namespace
    first, second = VERSIONS
    kube.apply([_manifest(ns, first)])
    scenario.wait_for(lambda: _status(kube, ns).get("phase") == "Succeeded", 240,
                      f"iris {first} from the PVC Succeeded")  # fmt: skip
    kube.run("-n", ns, "rollout", "status", f"deployment/{models.NAME}-router", "--timeout=120s")
    stable = _status(kube, ns)["stable"]["revision"]
    volumes = _json(kube, "get", "deployment", stable, "-n", ns)["spec"]["template"]["spec"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in volumes["volumes"]
              if "persistentVolumeClaim" in v]  # fmt: skip
    assert claims == [CLAIM], volumes["volumes"]

    api = kubernetes.config.new_client_from_config(config_file=kind_kubeconfig)
    with api, forward.node_port(api, models.NAME, ns, 8080) as url:
        rows = models.traffic_rows()
        with Load(url, rows, rate=CANARY_LOAD_RATE) as heavy:
            kube.apply([_manifest(ns, second)])
            scenario.wait_for(lambda: _status(kube, ns).get("stage") == "Canary", 240,
                              f"the canary of {second}")  # fmt: skip
            ups = scenario.wait_for(lambda: _metric_scale_ups(kube, ns), 180,
                                    "an HPA adding pods for the CPU the load uses")  # fmt: skip
            assert _status(kube, ns).get("stage") == "Canary", "scaled up during the canary"
            # Promoted right away, while pods the HPAs added may still be starting:
            # the operator holds the promotion until the candidate runs the
            # stable's pods (a handover without a dip in capacity).
            nonce = uuid.uuid4().hex[:8]
            kube.run("-n", ns, "annotate", "md", models.NAME, "--overwrite",
                     f"modeldeploy.io/command=promote:{nonce}")  # fmt: skip
            scenario.wait_for(lambda: _status(kube, ns).get("phase") == "Succeeded", 240,
                              f"{second} promoted")  # fmt: skip
            assert _events_of(kube, ns, "PromotionRequested"), _events(kube, ns)
            assert not _events_of(kube, ns, "PromotedUnderCapacity"), _events(kube, ns)
        new_stable = _status(kube, ns)["stable"]["revision"]
        assert new_stable != stable
        # A trickle of requests while the HPA scales down: pods leave without failures.
        with Load(url, rows, rate=2) as trickle:

            def back_to_minimum() -> bool:
                # Only the new stable's HPA is left (the old revision's went with it).
                current = {h["metadata"]["name"]: (h.get("status") or {}).get(
                    "currentReplicas") for h in _hpas(kube, ns)}  # fmt: skip
                return current == {new_stable: AUTOSCALING["minReplicas"]}

            scenario.wait_for(back_to_minimum, 300, f"{new_stable} back to minReplicas")
    answers = heavy.snapshot() + trickle.snapshot()
    failed = [a for a in answers if a[1] != 200]
    if failed:
        routers = kube.run("-n", ns, "logs", "-l", "app.kubernetes.io/component=router",
                           "--tail=40", "--prefix", check=False).stdout  # fmt: skip
        raise AssertionError(
            f"{len(failed)} of {len(answers)} requests failed (t, status): "
            f"{[a[:2] for a in failed[:10]]}; events: {_events(kube, ns)}\nrouters:\n{routers}"
        )
    versions = {v for _, _, v in trickle.snapshot()}
    assert versions == {second}, versions
    print(f"scaled up: {ups[0]}; {len(answers)} requests, none failed")
