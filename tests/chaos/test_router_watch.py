"""The router's own connections to the API server cut, blackholed, then left silent.

The router pods reach kube-apiserver through a TcpProxy the test controls. A
real pod reaches the API server through the `kubernetes` Service; on the
devcluster node its kubeconfig names the address, and the pod annotation
`devcluster.modeldeploy.io/api-server` replaces it (set here through
`traffic.router.template.metadata.annotations`, an option users have; no
product default changes for the test). The operator talks to the API server
directly: it keeps moving the rollout while the routers are blind.

What must hold: users' requests keep flowing with the routing the routers
last read (none fails), and the weight the operator set while they were blind
is applied once the path heals, even when the flows the partition held stay
open and silent for ever (a lost NAT / conntrack entry): only the router's
own timeouts end those.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cluster_helpers import Env, wait_for
from dataplane import X, Y, fitted, load_rows, make_bundle, operator_env, router
from dataplane import manifest as dataplane_manifest
from kubernetes import client
from modeldeploy_devcluster.node.credentials import API_SERVER_ANNOTATION
from netfaults import TcpProxy, upstream_of
from users import RATE, failed, served

from demo.load import Load

pytestmark = [pytest.mark.cluster, pytest.mark.chaos]

ROUTERS = "app.kubernetes.io/component=router,modeldeploy.io/name=fraud"
# Step 1's pause runs out while the routers are blind; step 2 waits for `promote`.
STEPS = [{"weight": 25, "pause": "15s"}, {"weight": 50, "pause": "10m"}]
# The router's own bound for a silent API flow (modeldeploy_router.kube.LIST_TIMEOUT,
# 10 s, and its back-off), plus the weight's way to its gauge. Before that bound
# the weight came 46 s after the heal (asyncio's 60 s TLS handshake timeout).
APPLIED_WITHIN_S = 25


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    yield from operator_env(cluster, namespace)


@pytest.fixture
def proxy(cluster) -> Iterator[TcpProxy]:
    p = TcpProxy(*upstream_of(cluster.server)).start()
    try:
        yield p
    finally:
        p.close()


def manifest(version: str, bundle: str, proxy: TcpProxy) -> dict[str, Any]:
    strategy = {"type": "Canary", "canary": {"steps": STEPS}, "analysis": {"metrics": []}}
    body = dataplane_manifest(version, bundle, strategy)
    annotations = {API_SERVER_ANNOTATION: f"https://{proxy.url_host}"}
    body["spec"]["traffic"] = {
        "provider": "builtin",
        "router": {"template": {"metadata": {"annotations": annotations}}},
    }
    return body


def router_weights(env: Env) -> dict[str, float | None]:
    """Each running router pod's canary weight, read from its own /metrics."""
    pods = client.CoreV1Api(env.api).list_namespaced_pod(env.namespace, label_selector=ROUTERS)
    weights: dict[str, float | None] = {}
    for pod in pods.items:
        if pod.status.phase != "Running" or pod.metadata.deletion_timestamp:
            continue
        try:
            text = httpx.get(f"http://{pod.status.pod_ip}:8080/metrics", timeout=2).text
        except httpx.HTTPError:
            weights[pod.metadata.name] = None
            continue
        found = re.search(r"^modeldeploy_router_canary_weight\{[^}]*\} (\S+)$", text, re.M)
        weights[pod.metadata.name] = float(found.group(1)) if found else None
    return weights


def all_routers_at(env: Env, weight: float, replicas: int = 2) -> bool:
    weights = router_weights(env)
    return len(weights) == replicas and all(w == weight for w in weights.values())


def test_router_watch_cut_blackholed_then_silent(env, proxy, tmp_path, figures):
    v1 = make_bundle(tmp_path, "1.0.0", fitted(X, Y), X)
    v2 = make_bundle(tmp_path, "2.0.0", fitted(X, Y, C=0.5), X)
    env.apply(manifest("1.0.0", v1, proxy))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving", 150)
    wait_for(lambda: all_routers_at(env, 0), 60, message="both routers up, weight 0")
    assert proxy.accepted >= 2, "the routers must reach the API server through the proxy"
    with router(env) as url, Load(url, load_rows(), rate=RATE) as load:
        env.apply(manifest("2.0.0", v2, proxy))
        env.wait_status(lambda s: s.get("phase") == "Canary", "v2 at step 1 (25%)", 150)
        wait_for(lambda: all_routers_at(env, 25), 30, message="both routers at 25%")
        # The fault: the routers' flows go silent, then every one is reset; their
        # reconnects are accepted and held (a partition).
        proxy.blackhole()
        cut = proxy.cut()
        blind_from = time.monotonic() - load.t0
        held_before = proxy.accepted
        env.wait_status(
            lambda s: s.get("phase") == "Canary" and s.get("currentStep") == 1,
            "the operator moved v2 to step 2 (50%) while the routers were blind",
            60,
        )
        wait_for(lambda: proxy.accepted > held_before, 30, message="a router to reconnect")
        blind_weights = router_weights(env)
        # The partition ends, but the flows it held stay open and silent for ever.
        proxy.heal(reset_held=False)
        healed = time.monotonic()
        blind_to = healed - load.t0
        try:
            wait_for(lambda: all_routers_at(env, 50), 90, message="both routers at 50%")
        except TimeoutError as exc:
            raise AssertionError(f"routers still at {router_weights(env)} after the heal") from exc
        applied_s = round(time.monotonic() - healed, 1)
        done = len(load.snapshot())
        wait_for(lambda: len(load.snapshot()) > done + 50, 30, message="answers after it")
    answers = load.snapshot()
    during = [a for a in answers if blind_from <= a[0] <= blind_to]
    figures.update(
        rate=RATE,
        requests=len(answers),
        failed=failed(answers),
        connections_cut=cut,
        blind_s=round(blind_to - blind_from, 1),
        answers_while_blind=len(during),
        v2_share_while_blind=round(served(during, "2.0.0") / max(len(during), 1), 2),
        heal_to_weight_applied_s=applied_s,
    )
    assert cut >= 4, figures  # two routers, two watches each
    assert set(blind_weights.values()) == {25.0}, blind_weights  # the last routing, kept
    assert failed(answers) == 0, figures
    assert served(during, "1.0.0") > 0 and served(during, "2.0.0") > 0, figures
    assert applied_s <= APPLIED_WITHIN_S, figures
