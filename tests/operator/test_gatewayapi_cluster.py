"""The gatewayapi traffic provider against the real Gateway API CRDs.

The standard-channel CRDs of the version pinned in hack/versions.env
(`hack/fetch-gateway-api-crds.sh`, run by `make binaries` / `make test`) are
applied to the local cluster; a user's Gateway and HTTPRoute are created as a
user would, and a rollout with `traffic.provider: gatewayapi` must write
weights and the RequestMirror filter that the real schema and its CEL rules
accept, at every stage, and leave the rest of the route alone.

No Gateway controller runs here (there is no data plane for HTTPRoutes on the
local cluster): the tests check what the operator writes, not that a gateway
routes by it. Revisions have 0 replicas, so stages advance on time alone.
"""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cluster_helpers
import pytest
import yaml
from cluster_helpers import ROOT, Env, apply_crd, manifest, wait_for
from kubernetes import client
from modeldeploy_devcluster.pytest_plugin import missing_tool
from modeldeploy_operator import spec
from modeldeploy_operator.traffic import gatewayapi

pytestmark = pytest.mark.cluster

GW_GROUP, GW_VERSION = "gateway.networking.k8s.io", "v1"
CRD_FILES = ("gatewayclasses", "gateways", "httproutes")
FETCH = ROOT / "hack" / "fetch-gateway-api-crds.sh"


def crd_dir() -> Path:
    """Where the fetch script keeps the CRDs (MODELDEPLOY_GATEWAY_API_CRDS overrides)."""
    if env := os.environ.get("MODELDEPLOY_GATEWAY_API_CRDS"):
        return Path(env)
    out = subprocess.run(
        ["bash", str(FETCH), "dir"], capture_output=True, text=True, check=True, timeout=30
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="session")
def gateway_api(cluster) -> Path:
    """The real Gateway API CRDs, applied once per session; CI fails without them."""
    directory = crd_dir()
    paths = [directory / f"gateway.networking.k8s.io_{name}.yaml" for name in CRD_FILES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        reason = (
            f"Gateway API CRDs missing in {directory} ({', '.join(missing)}): "
            "run `make binaries` (or bash hack/fetch-gateway-api-crds.sh; needs Go)"
        )
        cluster_helpers.SKIPPED.append(reason)
        missing_tool(reason)
    for path in paths:
        apply_crd(cluster.api_client(), path)
    return directory


@pytest.fixture
def env(cluster, namespace, gateway_api) -> Iterator[Env]:
    apply_crd(cluster.api_client())
    e = Env(cluster, namespace, cluster.prometheus_url)
    yield e
    if e.operator is not None:
        e.operator.close()


USER_FILTER = {
    "type": "RequestHeaderModifier",
    "requestHeaderModifier": {"set": [{"name": "x-team", "value": "fraud"}]},
}
GATEWAY = {
    "apiVersion": f"{GW_GROUP}/{GW_VERSION}",
    "kind": "Gateway",
    "metadata": {"name": "public-gateway"},
    "spec": {
        "gatewayClassName": "example",
        "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
    },
}
ROUTE = {
    "apiVersion": f"{GW_GROUP}/{GW_VERSION}",
    "kind": "HTTPRoute",
    "metadata": {"name": "fraud-route", "labels": {"team": "fraud"}},
    "spec": {
        "parentRefs": [{"name": "public-gateway", "sectionName": "http"}],
        "hostnames": ["fraud.example.com"],
        "rules": [
            {
                "name": "predict",
                "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}],
                "filters": [USER_FILTER],
                "backendRefs": [{"name": "fraud-stable", "port": 8080}],
                "timeouts": {"request": "10s"},
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}],
                "backendRefs": [{"name": "docs", "port": 80}],
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
                "filters": [
                    {
                        "type": "RequestRedirect",
                        "requestRedirect": {
                            "path": {"type": "ReplaceFullPath", "replaceFullPath": "/predict"}
                        },
                    }
                ],
            },
        ],
    },
}
STRATEGY = {
    "type": "Shadow",
    "shadow": {"duration": "5s", "minRequests": 0, "mirrorPercent": 50},
    "canary": {"steps": [{"weight": 20, "pause": "5s"}, {"weight": 60, "pause": "1h"}]},
}


def ref(track: str, **extra: Any) -> dict[str, Any]:
    """A Service reference as the schema stores it (defaults filled in)."""
    return {"group": "", "kind": "Service", "name": f"fraud-{track}", "port": 8080, **extra}


def mirror(percent: int) -> dict[str, Any]:
    return {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": ref("shadow"), "percent": percent},
    }


class Routes:
    """The user's side: create and read Gateway API objects in the test namespace."""

    def __init__(self, env: Env) -> None:
        self.custom = client.CustomObjectsApi(env.api)
        self.namespace = env.namespace

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(
            GW_GROUP, GW_VERSION, self.namespace, plural, body
        )

    def route(self) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            GW_GROUP, GW_VERSION, self.namespace, "httproutes", "fraud-route"
        )

    def wait_rule0(self, backends: list[dict[str, Any]], filters: list[dict[str, Any]], what: str):
        def matches() -> dict[str, Any] | None:
            route = self.route()
            rule = route["spec"]["rules"][0]
            ok = rule.get("backendRefs") == backends and rule.get("filters", []) == filters
            return route if ok else None

        try:
            return wait_for(matches, timeout=30, interval=0.1, message=what)
        except TimeoutError as exc:
            raise AssertionError(
                f"{what}: route rule 0 is {self.route()['spec']['rules'][0]}"
            ) from exc


def assert_user_fields_kept(route: dict[str, Any], created: dict[str, Any]) -> None:
    """Everything but rule 0's backendRefs / our mirror is as the user left it."""
    assert route["metadata"]["labels"] == created["metadata"]["labels"]
    spec_without_rules = {k: v for k, v in route["spec"].items() if k != "rules"}
    assert spec_without_rules == {k: v for k, v in created["spec"].items() if k != "rules"}
    assert route["spec"]["rules"][1:] == created["spec"]["rules"][1:]
    rule, before = route["spec"]["rules"][0], created["spec"]["rules"][0]
    for key in ("name", "matches", "timeouts"):
        assert rule[key] == before[key], key
    assert rule["filters"][0] == before["filters"][0]


def assert_steady(env: Env, route: dict[str, Any]) -> None:
    """What the operator would write next equals what the API server stored (defaults
    included), so a steady reconcile sends no patch."""
    md = spec.parse(env.get())
    rules = gatewayapi.rules_for(route, md, env.status()["traffic"], 0)
    assert rules == route["spec"]["rules"]


def md_manifest(version: str, rule_index: int = 0) -> dict[str, Any]:
    body = manifest(version, STRATEGY["canary"]["steps"], **STRATEGY)
    body["spec"]["traffic"] = {
        "provider": "gatewayapi",
        "httpRoute": {"name": "fraud-route", "ruleIndex": rule_index},
    }
    return body


def test_rollout_weights_and_mirror_in_a_real_httproute(env):
    routes = Routes(env)
    routes.create("gateways", GATEWAY)
    created = routes.create("httproutes", ROUTE)
    env.start_operator()
    env.apply(md_manifest("1.0.0"))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 Succeeded")
    route = routes.wait_rule0([ref("stable", weight=100)], [USER_FILTER], "stable at 100%")
    assert_user_fields_kept(route, created)
    assert_steady(env, route)

    env.apply(md_manifest("2.0.0"))
    # Each state is compared with exactly what the operator writes: the API
    # server stored it as written (no defaults added) after its schema and CEL.
    route = routes.wait_rule0([ref("stable", weight=100)], [USER_FILTER, mirror(50)], "shadow")
    assert_user_fields_kept(route, created)
    for weight in (20, 60):
        backends = [ref("stable", weight=100 - weight), ref("canary", weight=weight)]
        route = routes.wait_rule0(backends, [USER_FILTER], f"canary at {weight}%")
        assert_user_fields_kept(route, created)
    env.wait_status(lambda s: s.get("canaryWeight") == 60, "canary step 2")
    assert_steady(env, routes.route())

    assert env.plugin("abort", "fraud").returncode == 0
    route = routes.wait_rule0([ref("stable", weight=100)], [USER_FILTER], "back to stable")
    assert_user_fields_kept(route, created)
    env.wait_status(lambda s: s.get("phase") == "RolledBack", "rolled back")
    assert_steady(env, routes.route())


def test_a_rule_the_schema_refuses_is_reported_and_the_route_left_alone(env):
    """Rule 2 redirects; the real CEL rules forbid backendRefs beside a RequestRedirect."""
    routes = Routes(env)
    created = routes.create("httproutes", ROUTE)
    env.start_operator()
    env.apply(md_manifest("1.0.0", rule_index=2))
    core = client.CoreV1Api(env.api)

    def rejected() -> str | None:
        events = core.list_namespaced_event(
            env.namespace, field_selector="involvedObject.kind=ModelDeployment"
        ).items
        return next((e.message for e in events if e.reason == "HTTPRouteRejected"), None)

    message = wait_for(rejected, timeout=30, message="an HTTPRouteRejected Event")
    assert "HTTPRoute" in message and "fraud-route" in message, message
    assert "RequestRedirect filter must not be used together with backendRefs" in message, message
    assert routes.route()["spec"] == created["spec"]


def test_the_example_route_and_gateway_are_accepted(env):
    """examples/04-gatewayapi's Gateway API objects pass the real schema (dry run)."""
    path = ROOT / "examples" / "04-gatewayapi" / "modeldeployment.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d["apiVersion"].startswith(GW_GROUP)]
    assert {d["kind"] for d in docs} == {"Gateway", "HTTPRoute"}
    custom = client.CustomObjectsApi(env.api)
    for doc in docs:
        plural = {"Gateway": "gateways", "HTTPRoute": "httproutes"}[doc["kind"]]
        custom.create_namespaced_custom_object(
            GW_GROUP, GW_VERSION, env.namespace, plural, copy.deepcopy(doc), dry_run="All"
        )
