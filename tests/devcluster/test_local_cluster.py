"""Acceptance tests of the local cluster: real control plane, Prometheus, process node.

Each test gets a fresh namespace; the cluster is shared by the session (see
modeldeploy_devcluster.pytest_plugin). The test image ``example.test/http-server``
maps to the bundled sample server, which reports its pod name and PID and
serves /metrics.
"""

from __future__ import annotations

import os
import sys
import textwrap

import httpx
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from modeldeploy_devcluster import workloads
from modeldeploy_devcluster.waiting import wait_for

pytestmark = pytest.mark.cluster

IMAGE = "example.test/http-server:1.0"


@pytest.fixture(scope="module", autouse=True)
def test_images(cluster) -> None:
    cluster.register_images(
        {"example.test/http-server": [sys.executable, "-m", "modeldeploy_devcluster.sample_server"]}
    )


@pytest.fixture
def api(cluster) -> client.ApiClient:
    return cluster.api_client()


def _deploy(api: client.ApiClient, namespace: str, name: str, replicas: int = 2) -> None:
    client.AppsV1Api(api).create_namespaced_deployment(
        namespace, workloads.http_deployment(name, image=IMAGE, replicas=replicas)
    )
    client.CoreV1Api(api).create_namespaced_service(namespace, workloads.service(name))
    wait_for(
        lambda: workloads.deployment_available(
            client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
        ),
        timeout=90,
        message=f"Deployment {namespace}/{name} to become Available",
    )


def _addresses(api: client.ApiClient, namespace: str, service: str) -> list[str]:
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return sorted(
        a
        for s in slices.items
        for e in s.endpoints or []
        if e.conditions and e.conditions.ready
        for a in e.addresses
    )


def test_two_replicas_become_available_with_own_loopback_addresses(api, cluster, namespace):
    _deploy(api, namespace, "web")
    addresses = wait_for(
        lambda: (a := _addresses(api, namespace, "web")) and len(a) == 2 and a,
        timeout=30,
        message="two ready endpoints in the EndpointSlice",
    )
    assert all(a.startswith("127.") and a != "127.0.0.1" for a in addresses)
    assert len(set(addresses)) == 2
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert sorted(p.status.pod_ip for p in pods) == addresses
    answers = [httpx.get(f"http://{a}:8080/", timeout=5).json() for a in addresses]
    # Each address is served by its own pod: both bind 0.0.0.0:8080, which the
    # node maps to each pod's own address (node/bindshim.c).
    assert sorted(x["pod"] for x in answers) == sorted(p.metadata.name for p in pods)
    assert sorted(x["address"] for x in answers) == addresses
    with cluster.forward("web", namespace, 8080) as url:
        seen = {httpx.get(f"{url}/", timeout=5).json()["pod"] for _ in range(4)}
    assert seen == {p.metadata.name for p in pods}  # round robin over both endpoints


def test_prometheus_scrapes_both_pods_through_kubernetes_sd(api, cluster, namespace):
    _deploy(api, namespace, "scraped")
    pods = {
        p.metadata.name
        for p in client.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector="app=scraped")
        .items
    }
    query = f'up{{namespace="{namespace}", app="scraped"}} == 1'

    def scraped() -> set[str]:
        r = httpx.get(f"{cluster.prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
        found = {s["metric"]["pod"] for s in r.json()["data"]["result"]}
        return found if found == pods else set()

    assert wait_for(scraped, timeout=60, message=f"Prometheus: {query} for {sorted(pods)}") == pods


def test_deleting_the_deployment_stops_the_processes(api, namespace):
    _deploy(api, namespace, "doomed")
    addresses = wait_for(lambda: (a := _addresses(api, namespace, "doomed")) and len(a) == 2 and a)
    pids = [httpx.get(f"http://{a}:8080/", timeout=5).json()["pid"] for a in addresses]
    for pid in pids:
        os.kill(pid, 0)  # alive now
    client.AppsV1Api(api).delete_namespaced_deployment(
        "doomed", namespace, propagation_policy="Foreground"
    )

    def gone() -> bool:
        left = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=doomed")
        return not left.items

    wait_for(gone, timeout=60, message="the Deployment's pods to be deleted")

    def dead(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(lambda: all(dead(p) for p in pids), timeout=10, message=f"processes {pids} to exit")


def _pod(name: str, image: str, command: list[str] | None = None, **spec) -> dict:
    container = {"name": "main", "image": image}
    if command:
        container["command"] = command
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [container], **spec},
    }


def test_crashing_container_is_restarted_with_a_rising_count(api, cluster, namespace):
    core = client.CoreV1Api(api)
    script = "print('crashing on purpose', flush=True); raise SystemExit(3)"
    core.create_namespaced_pod(namespace, _pod("crasher", IMAGE, ["python", "-c", script]))

    def restarted_twice():
        pod = core.read_namespaced_pod("crasher", namespace)
        statuses = pod.status.container_statuses or []
        return statuses and statuses[0].restart_count >= 2 and statuses[0]

    status = wait_for(restarted_twice, timeout=60, message="restartCount >= 2")
    assert status.last_state.terminated.exit_code == 3
    # Exactly one current state, never a merge of the old and the new one.
    states = [status.state.running, status.state.waiting, status.state.terminated]
    assert sum(s is not None for s in states) == 1
    assert cluster.logs("crasher", namespace).count("crashing on purpose") >= 2


def test_unknown_image_reports_err_image_pull(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, _pod("lost", "registry.invalid/nothing-here:9"))

    def waiting():
        statuses = core.read_namespaced_pod("lost", namespace).status.container_statuses or []
        w = statuses and statuses[0].state.waiting
        return w and w.reason == "ErrImagePull" and w

    state = wait_for(waiting, timeout=30, message="waiting reason ErrImagePull")
    assert "registry.invalid/nothing-here" in state.message


def test_rbac_applies_to_a_pods_service_account(api, cluster, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    # The pod talks to the API with the kubeconfig the node wrote for it.
    script = textwrap.dedent(
        """
        import time, kubernetes
        from kubernetes.client.rest import ApiException
        kubernetes.config.load_kube_config()
        core = kubernetes.client.CoreV1Api()
        while True:
            try:
                core.list_namespaced_config_map(NAMESPACE)
                print("API OK", flush=True)
            except ApiException as e:
                print("API DENIED", e.status, flush=True)
            time.sleep(0.5)
        """
    ).replace("NAMESPACE", repr(namespace))
    core.create_namespaced_pod(
        namespace,
        _pod("talker", IMAGE, ["python", "-c", script], serviceAccountName="reader"),
    )

    def said(line: str) -> bool:
        return line in cluster.logs("talker", namespace).splitlines()

    wait_for(
        lambda: said("API DENIED 403"),
        timeout=60,
        message="a 403 for the service account without rights",
    )
    assert not said("API OK")
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader-view"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    wait_for(
        lambda: said("API OK"),
        timeout=30,
        message="API access after the RoleBinding",
    )


def test_deleting_an_owner_garbage_collects_owned_objects(api, namespace):
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "owned", "ownerReferences": [ref]}}
    )
    core.read_namespaced_config_map("owned", namespace)
    core.delete_namespaced_config_map("owner", namespace)

    def collected() -> bool:
        try:
            core.read_namespaced_config_map("owned", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(collected, timeout=60, message="the owned ConfigMap to be garbage-collected")


def test_failing_liveness_probe_restarts_the_container(api, namespace):
    core = client.CoreV1Api(api)
    pod = _pod("numb", IMAGE, ["python", "-c", "import time; time.sleep(600)"])
    # Nothing listens on this port: every liveness check fails.
    pod["spec"]["containers"][0]["livenessProbe"] = {
        "tcpSocket": {"port": 9},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    core.create_namespaced_pod(namespace, pod)

    def restarted():
        statuses = core.read_namespaced_pod("numb", namespace).status.container_statuses or []
        return statuses and statuses[0].restart_count >= 1 and statuses[0]

    status = wait_for(restarted, timeout=60, message="a restart after failed liveness probes")
    assert status.last_state.terminated.exit_code == 143  # SIGTERM from the node


def test_env_from_config_maps_secrets_and_fields(api, cluster, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"k": "v1"}})
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "sec"}, "stringData": {"pw": "s3cret"}}
    )
    pod = _pod(
        "envy",
        IMAGE,
        ["python", "-c", "import os; print('ENV', os.environ['OUT'], flush=True)"],
        restartPolicy="Never",
    )
    pod["spec"]["containers"][0]["env"] = [
        {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "OUT", "value": "$(K)/$(PW)/$(NS)"},
    ]
    core.create_namespaced_pod(namespace, pod)
    wait_for(
        lambda: core.read_namespaced_pod("envy", namespace).status.phase == "Succeeded",
        timeout=60,
        message="the pod to succeed",
    )
    assert f"ENV v1/s3cret/{namespace}" in cluster.logs("envy", namespace).splitlines()
