"""``modeldeploy-devcluster smoke``: the whole local cluster, end to end, in a minute.

Starts the cluster (or reuses a running one), deploys two replicas of the
sample server, waits until the Deployment is Available, calls both pods via
their EndpointSlice addresses and a Service forward, asks Prometheus whether
it scrapes both, and tears down what it started.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
from kubernetes import client

from modeldeploy_devcluster import launcher, workloads
from modeldeploy_devcluster.waiting import wait_for


class Steps:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[smoke {time.monotonic() - self.t0:6.1f}s] {text}", flush=True)


def run(root: Path, scrape_interval: str = "2s") -> int:
    step = Steps()
    reuse = launcher.running(launcher.Layout(root)) is not None
    step(f"{'reusing the cluster' if reuse else 'starting a cluster'} in {root}")
    cluster = launcher.up(root, scrape_interval)
    step(f"cluster ready: API {cluster.server}, Prometheus {cluster.prometheus_url}")
    cluster.register_images(workloads.sample_image_map())
    api = cluster.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ns = f"smoke-{uuid.uuid4().hex[:6]}"
    try:
        core.create_namespace({"metadata": {"name": ns}})
        apps.create_namespaced_deployment(ns, workloads.http_deployment("hello"))
        core.create_namespaced_service(ns, workloads.service("hello"))
        step(f"deployed 2 replicas of {workloads.SAMPLE_IMAGE} in namespace {ns}")
        wait_for(
            lambda: workloads.deployment_available(apps.read_namespaced_deployment("hello", ns)),
            timeout=120,
            message="Deployment hello to become Available",
        )
        step("Deployment Available")
        slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
            ns, label_selector="kubernetes.io/service-name=hello"
        )
        addresses = sorted(a for s in slices.items for e in s.endpoints or [] for a in e.addresses)
        step(f"EndpointSlice addresses: {', '.join(addresses)}")
        for address in addresses:
            me = httpx.get(f"http://{address}:8080/", timeout=5).json()
            step(f"  {address} answers: pod {me['pod']} (pid {me['pid']})")
        with cluster.forward("hello", ns, 8080) as url:
            step(f"  via forward {url}: {httpx.get(url + '/', timeout=5).json()['pod']}")
        query = f'up{{namespace="{ns}"}} == 1'

        def scraped() -> int:
            r = httpx.get(
                f"{cluster.prometheus_url}/api/v1/query", params={"query": query}, timeout=5
            )
            n = len(r.json()["data"]["result"])
            return n if n == 2 else 0

        wait_for(scraped, timeout=90, message=f"Prometheus to report {query} for both pods")
        step(f"Prometheus: {query} for 2 pods (found through Kubernetes service discovery)")
    finally:
        core.delete_namespace(ns)
        if not reuse:
            launcher.down(root)
            step("cluster stopped")
    step("smoke OK")
    return 0
