"""Kubernetes mode on the local cluster: the router, run as a local process with
the cluster's kubeconfig, follows the ModelDeployment's status.traffic and the
track Services' EndpointSlices. Upstreams are pods (the predictor-shaped test
app, run by the process-backed node on their own 127.0.0.N)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import kubernetes as k8s
import pytest
from modeldeploy_devcluster import waiting

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
UPSTREAM_APP = HERE / "upstream_app.py"
GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
NAME = "iris"
BODY = b'{"instances": [[1, 0.5]]}'

MINIMAL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": PLURAL,
            "singular": "modeldeployment",
            "kind": "ModelDeployment",
            "shortNames": ["md"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def ensure_crd(api: k8s.client.ApiClient) -> None:
    """The project's CRD when the cluster has it (or crds/ exists), else a minimal one."""
    ext = k8s.client.ApiextensionsV1Api(api)
    name = f"{PLURAL}.{GROUP}"
    try:
        ext.read_custom_resource_definition(name)
        return
    except k8s.client.ApiException as exc:
        if exc.status != 404:
            raise
    crd_files = sorted((REPO / "crds").glob("*.yaml")) if (REPO / "crds").is_dir() else []
    if crd_files:
        k8s.utils.create_from_yaml(api, str(crd_files[0]))
    else:
        ext.create_custom_resource_definition(MINIMAL_CRD)

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    waiting.wait_for(established, timeout=30, interval=0.2, message="CRD established")


def track_objects(ns: str, track: str, replicas: int) -> tuple[dict, dict]:
    revision = f"{NAME}-{track}rev"
    labels = {"modeldeploy.io/name": NAME, "modeldeploy.io/revision": revision}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": revision, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "predictor",
                            "image": "ghcr.io/modeldeploy/predictor:test",
                            "command": [sys.executable, str(UPSTREAM_APP)],
                            "args": [
                                "--host",
                                "$(POD_IP)",
                                "--port",
                                "8080",
                                "--name",
                                f"{track}@$(POD_IP)",
                            ],
                            "env": [
                                {
                                    "name": "POD_IP",
                                    "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                }
                            ],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/v2/health/ready", "port": 8080},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{NAME}-{track}", "namespace": ns, "labels": labels},
        "spec": {
            "selector": {"modeldeploy.io/revision": revision},
            "ports": [{"name": "http", "port": 8080, "targetPort": 8080}],
        },
    }
    return deployment, service


def set_weight(custom: k8s.client.CustomObjectsApi, ns: str, weight: int) -> None:
    traffic = {
        "canaryWeight": weight,
        "mirrorPercent": 0,
        "tracks": {
            "stable": {"service": f"{NAME}-stable", "version": "1.0.0", "revision": "r1"},
            "canary": {"service": f"{NAME}-canary", "version": "2.0.0", "revision": "r2"},
        },
    }
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, NAME, {"status": {"traffic": traffic}}
    )


@pytest.fixture
def tracked(cluster, namespace):
    """Stable (2 pods) and canary (1 pod) Deployments and Services, and the
    ModelDeployment routing all traffic to stable."""
    ns = getattr(namespace, "name", namespace)
    api = cluster.api_client()
    ensure_crd(api)
    for track, replicas in (("stable", 2), ("canary", 1)):
        for obj in track_objects(ns, track, replicas):
            k8s.utils.create_from_dict(api, obj)
    custom = k8s.client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": NAME},
            # No operator runs here: the spec only has to pass the CRD's schema.
            "spec": {
                "model": {"name": NAME, "version": "1.0.0", "uri": "file:///nonexistent"},
                "predictor": {"image": "ghcr.io/modeldeploy/predictor:test"},
            },
        },
    )
    set_weight(custom, ns, 0)
    return ns, custom, api


@pytest.fixture
def routed(cluster, tracked, procs, port, tmp_path):
    """The objects of `tracked` behind a router process in Kubernetes mode."""
    ns, custom, api = tracked
    log = open(tmp_path / "router.log", "wb")  # noqa: SIM115 - closed right after Popen
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("modeldeploy-router")),
            "--port",
            str(port),
            "--kube",
            "--namespace",
            ns,
            "--model-deployment",
            NAME,
        ],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    procs.procs.append(proc)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        endpoints = httpx.get(f"{base}/metrics").text
        return (
            httpx.get(f"{base}/readyz").status_code == 200
            and 'modeldeploy_router_endpoints{model="iris",track="stable"} 2.0' in endpoints
            and 'modeldeploy_router_endpoints{model="iris",track="canary"} 1.0' in endpoints
        )

    waiting.wait_for(ready, timeout=120, interval=0.5, message="router sees 2 stable + 1 canary")
    return ns, custom, api, base


def upstream_of(base: str) -> str:
    resp = httpx.post(f"{base}/predict", content=BODY, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-upstream"]


def test_weight_change_applies_within_one_second(routed) -> None:
    ns, custom, _, base = routed
    assert {upstream_of(base).split("@")[0] for _ in range(20)} == {"stable"}
    for weight, track in ((100, "canary"), (0, "stable")):
        set_weight(custom, ns, weight)
        changed = time.monotonic()
        while upstream_of(base).split("@")[0] != track:
            assert time.monotonic() - changed < 1.0, f"weight {weight} not applied within 1 s"
            time.sleep(0.02)
        assert {upstream_of(base).split("@")[0] for _ in range(20)} == {track}


def test_deleted_pod_stops_receiving_traffic(routed) -> None:
    ns, _, api, base = routed
    core = k8s.client.CoreV1Api(api)
    pods = core.list_namespaced_pod(ns, label_selector=f"modeldeploy.io/revision={NAME}-stablerev")
    assert len(pods.items) == 2
    victim = pods.items[0]
    victim_name = f"stable@{victim.status.pod_ip}"
    assert victim_name in {upstream_of(base) for _ in range(20)}  # round robin reaches both
    core.delete_namespaced_pod(victim.metadata.name, ns)

    def gone() -> bool:
        return victim_name not in {upstream_of(base) for _ in range(10)}

    waiting.wait_for(gone, timeout=15, interval=0.1, message="deleted pod out of rotation")
    answered = [upstream_of(base) for _ in range(50)]  # every one is 200 (checked inside)
    assert victim_name not in answered


def ready_urls(core: k8s.client.CoreV1Api, ns: str, track: str) -> tuple[str, ...]:
    """Base URLs of a track's ready, not terminating pods, as the API reports them."""
    selector = f"modeldeploy.io/revision={NAME}-{track}rev"
    urls = set()
    for pod in core.list_namespaced_pod(ns, label_selector=selector).items:
        conditions = pod.status.conditions or []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        if ready and pod.metadata.deletion_timestamp is None:
            urls.add(f"http://{pod.status.pod_ip}:8080")
    return tuple(sorted(urls))


async def test_relists_after_410_gone_then_follows_changes(cluster, tracked, monkeypatch) -> None:
    """The ModelDeployment watch resumes from resourceVersion 1. The API server's
    watch cache for a custom resource starts when its CRD is established, so
    it holds nothing that old and the real server answers 410 Gone ("too old
    resource version"); the source must relist and then follow changes made
    afterwards: weights, and endpoints. Each kind of change is made twice in
    sequence: whatever a relist's own list picked up, the second change can
    only arrive through the watch that follows it."""
    from modeldeploy_router import kube

    ns, custom, api = tracked
    core, apps = k8s.client.CoreV1Api(api), k8s.client.AppsV1Api(api)
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    source = kube.KubeSource(ns, NAME, "", resume_from={"md": "1"})

    def track_urls(track: str) -> tuple[str, ...] | None:
        table = source.table
        return table.tracks[track].pool.urls if table and track in table.tracks else None

    async def until(check, what: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(check):  # checks may call the (blocking) API
            assert time.monotonic() < deadline, f"{what}: not seen in {timeout}s ({source.table})"
            await asyncio.sleep(0.1)

    def endpoints_match(track: str, count: int):
        def check() -> bool:
            urls = ready_urls(core, ns, track)
            return len(urls) == count and track_urls(track) == urls

        return check

    def scale_canary(replicas: int) -> None:
        apps.patch_namespaced_deployment_scale(
            f"{NAME}-canaryrev", ns, {"spec": {"replicas": replicas}}
        )

    await source.start(lambda table: None)
    try:
        await until(lambda: source.gone["md"] >= 1, "410 Gone on the ModelDeployment watch")
        await until(endpoints_match("stable", 2), "2 stable endpoints")
        await until(endpoints_match("canary", 1), "1 canary endpoint")
        for weight in (100, 35):
            await asyncio.to_thread(set_weight, custom, ns, weight)
            await until(lambda w=weight: source.table.canary_weight == w, f"weight {weight}", 10)
        for replicas in (2, 1):
            await asyncio.to_thread(scale_canary, replicas)
            await until(endpoints_match("canary", replicas), f"{replicas} canary endpoints")
        assert track_urls("stable") == await asyncio.to_thread(ready_urls, core, ns, "stable")
        assert source.gone == {"md": 1, "slices": 0}  # one relist, then plain watching
    finally:
        await source.stop()
