"""Gateway API: weights and mirroring written into a user-owned HTTPRoute.

The HTTPRoute belongs to the user (it names the Gateway and the matches);
the operator only rewrites the managed rule's `backendRefs` and its
RequestMirror filter, with a merge patch, and only when they differ.
"""

from __future__ import annotations

from typing import Any

from modeldeploy_operator import manifests
from modeldeploy_operator.kube import Kube
from modeldeploy_operator.spec import ModelDeployment

API_VERSION = "gateway.networking.k8s.io/v1"


class RouteMissing(Exception):
    """The referenced HTTPRoute does not exist (a user error, reported in an Event)."""


class GatewayAPI:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def reconcile(self, md: ModelDeployment) -> None:
        return None  # the HTTPRoute is the user's; nothing to create

    async def set_routes(self, md: ModelDeployment, traffic: dict[str, Any]) -> None:
        name = md.traffic.http_route or ""
        route = await self.kube.get_object(API_VERSION, "HTTPRoute", md.namespace, name)
        if route is None:
            raise RouteMissing(f"HTTPRoute {md.namespace}/{name} not found (traffic.httpRoute)")
        rules = manifests.httproute_rules(route, md, traffic, md.traffic.rule_index)
        if rules != (route.get("spec") or {}).get("rules"):
            await self.kube.merge_patch_object(
                API_VERSION, "HTTPRoute", md.namespace, name, {"spec": {"rules": rules}}
            )
