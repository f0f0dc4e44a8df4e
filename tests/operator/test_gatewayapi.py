"""The Gateway API provider: what it writes into the user's HTTPRoute, and when.

Pure rule building, then the provider against a fake of `kube.Kube` (which
only records calls). The cluster test (test_gatewayapi_cluster.py) checks the
same against the real Gateway API CRDs and API server.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from md_factories import body
from modeldeploy_operator import spec
from modeldeploy_operator.traffic import gatewayapi

STABLE = {"group": "", "kind": "Service", "name": "fraud-stable", "port": 8080}
CANARY = {"group": "", "kind": "Service", "name": "fraud-canary", "port": 8080}
SHADOW = {"group": "", "kind": "Service", "name": "fraud-shadow", "port": 8080}
USER_FILTER = {
    "type": "RequestHeaderModifier",
    "requestHeaderModifier": {"set": [{"name": "x-team", "value": "fraud"}]},
}
AUDIT_MIRROR = {
    "type": "RequestMirror",
    "requestMirror": {"backendRef": {"name": "audit", "port": 80}, "percent": 5},
}
ROUTE: dict[str, Any] = {
    "metadata": {"name": "web", "resourceVersion": "7"},
    "spec": {
        "parentRefs": [{"name": "gw"}],
        "rules": [
            {
                "name": "predict",
                "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}],
                "filters": [USER_FILTER, AUDIT_MIRROR],
                "backendRefs": [{"name": "fraud-stable", "port": 8080}],
                "timeouts": {"request": "10s"},
            },
            {"matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}]},
        ],
    },
}
CANARY_30 = {"canaryWeight": 30, "mirrorPercent": 0, "tracks": {"stable": {}, "canary": {}}}
SHADOW_50 = {"canaryWeight": 0, "mirrorPercent": 50, "tracks": {"stable": {}, "shadow": {}}}
STABLE_ONLY = {"canaryWeight": 0, "mirrorPercent": 0, "tracks": {"stable": {}}}


def gw_md(rule_index: int = 0) -> spec.ModelDeployment:
    traffic = {"provider": "gatewayapi", "httpRoute": {"name": "web", "ruleIndex": rule_index}}
    return spec.parse(body("2.0.0", traffic=traffic))


def test_canary_weights_keep_everything_else():
    rules = gatewayapi.rules_for(ROUTE, gw_md(), CANARY_30, 0)
    assert rules[0]["backendRefs"] == [{**STABLE, "weight": 70}, {**CANARY, "weight": 30}]
    assert rules[0]["filters"] == [USER_FILTER, AUDIT_MIRROR]
    untouched = {k: v for k, v in rules[0].items() if k != "backendRefs"}
    assert untouched == {k: v for k, v in ROUTE["spec"]["rules"][0].items() if k != "backendRefs"}
    assert rules[1] == ROUTE["spec"]["rules"][1]


def test_shadow_mirror_is_added_then_removed_alone():
    (rule, _) = gatewayapi.rules_for(ROUTE, gw_md(), SHADOW_50, 0)
    ours = {"type": "RequestMirror", "requestMirror": {"backendRef": SHADOW, "percent": 50}}
    assert rule["filters"] == [USER_FILTER, AUDIT_MIRROR, ours]
    assert rule["backendRefs"] == [{**STABLE, "weight": 100}]
    shadowed = copy.deepcopy(ROUTE)
    shadowed["spec"]["rules"][0] = rule
    (after, _) = gatewayapi.rules_for(shadowed, gw_md(), STABLE_ONLY, 0)
    assert after["filters"] == [USER_FILTER, AUDIT_MIRROR]  # the user's mirror stays


def test_filters_key_is_dropped_when_only_our_mirror_was_there():
    route = {"metadata": {"name": "web"}, "spec": {"rules": [{}]}}
    (rule,) = gatewayapi.rules_for(route, gw_md(), SHADOW_50, 0)
    route["spec"]["rules"] = [rule]
    (after,) = gatewayapi.rules_for(route, gw_md(), STABLE_ONLY, 0)
    assert "filters" not in after


def test_rule_index_selects_the_managed_rule():
    rules = gatewayapi.rules_for(ROUTE, gw_md(1), CANARY_30, 1)
    assert rules[0] == ROUTE["spec"]["rules"][0]
    assert rules[1]["backendRefs"][1] == {**CANARY, "weight": 30}


def test_missing_rule_is_a_clear_error():
    with pytest.raises(ValueError, match="ruleIndex 3 does not exist"):
        gatewayapi.rules_for(ROUTE, gw_md(), STABLE_ONLY, 3)


class FakeKube:
    """Records merge patches; serves one route (or none); can fail the patch."""

    def __init__(self, route: dict[str, Any] | None, fail: ApiException | None = None) -> None:
        self.route = route
        self.fail = fail
        self.patches: list[dict[str, Any]] = []

    async def get_object(self, api_version: str, kind: str, namespace: str, name: str):
        assert (api_version, kind, namespace, name) == (
            gatewayapi.API_VERSION,
            "HTTPRoute",
            "ns",
            "web",
        )
        return copy.deepcopy(self.route)

    async def merge_patch_object(self, api_version, kind, namespace, name, patch) -> None:
        if self.fail is not None:
            raise self.fail
        self.patches.append(patch)


async def test_patch_carries_the_resource_version_and_steady_routes_are_not_patched():
    kube = FakeKube(ROUTE)
    provider = gatewayapi.GatewayAPI(kube)  # type: ignore[arg-type]
    await provider.set_routes(gw_md(), CANARY_30)
    (patch,) = kube.patches
    assert patch["metadata"] == {"resourceVersion": "7"}
    kube.route = {**ROUTE, "spec": {**ROUTE["spec"], "rules": patch["spec"]["rules"]}}
    await provider.set_routes(gw_md(), CANARY_30)
    assert len(kube.patches) == 1


async def test_missing_route_and_bad_rule_index_are_route_errors():
    with pytest.raises(gatewayapi.RouteMissing, match="HTTPRoute ns/web not found"):
        await gatewayapi.GatewayAPI(FakeKube(None)).set_routes(gw_md(), STABLE_ONLY)  # type: ignore[arg-type]
    with pytest.raises(gatewayapi.RouteError, match="ruleIndex 5") as caught:
        await gatewayapi.GatewayAPI(FakeKube(ROUTE)).set_routes(gw_md(5), STABLE_ONLY)  # type: ignore[arg-type]
    assert caught.value.reason == "HTTPRouteInvalid"


async def test_a_refused_patch_names_the_api_servers_message():
    refused = ApiException(status=422, reason="Unprocessable Entity")
    refused.body = json.dumps({"message": "RequestRedirect filter must not be used together"})
    kube = FakeKube(ROUTE, fail=refused)
    with pytest.raises(gatewayapi.RouteRejected, match="must not be used together") as caught:
        await gatewayapi.GatewayAPI(kube).set_routes(gw_md(), CANARY_30)  # type: ignore[arg-type]
    assert caught.value.reason == "HTTPRouteRejected"
    kube.fail = ApiException(status=409, reason="Conflict")
    with pytest.raises(ApiException):  # retried by the handler, not a user error
        await gatewayapi.GatewayAPI(kube).set_routes(gw_md(), CANARY_30)  # type: ignore[arg-type]
