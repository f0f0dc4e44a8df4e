"""Gateway API: weights and mirroring written into a user-owned HTTPRoute.

The HTTPRoute belongs to the user (it names the Gateway and the matches);
the operator only rewrites the managed rule's `backendRefs` and its
RequestMirror filter to the shadow Service, with a merge patch, and only when
they differ. The patch carries the resourceVersion it was computed from, so a
concurrent edit by the user is never overwritten: the API server answers 409
and the next reconcile starts from the user's version.

No data plane is involved here: whichever Gateway controller serves the route
makes the weights effective (or does not); the operator writes what the
Gateway API schema accepts, and reports a route it cannot use as an Event.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from modeldeploy_operator import manifests
from modeldeploy_operator.kube import Kube
from modeldeploy_operator.spec import ModelDeployment

API_VERSION = "gateway.networking.k8s.io/v1"


class RouteError(Exception):
    """The referenced HTTPRoute cannot carry the weights (a user error, reported as an Event)."""

    reason = "HTTPRouteInvalid"


class RouteMissing(RouteError):
    """The referenced HTTPRoute does not exist."""

    reason = "HTTPRouteMissing"


class RouteRejected(RouteError):
    """The API server refused the rules (the route's schema or CEL rules)."""

    reason = "HTTPRouteRejected"


class GatewayAPI:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def reconcile(self, md: ModelDeployment) -> None:
        return None  # the HTTPRoute is the user's; nothing to create

    async def set_routes(self, md: ModelDeployment, traffic: dict[str, Any]) -> None:
        name = md.traffic.http_route or ""
        where = f"HTTPRoute {md.namespace}/{name}"
        try:
            route = await self.kube.get_object(API_VERSION, "HTTPRoute", md.namespace, name)
        except ResourceNotFoundError as exc:
            raise RouteMissing(
                f"the API server serves no {API_VERSION} HTTPRoute: install the Gateway API CRDs"
            ) from exc
        if route is None:
            raise RouteMissing(f"{where} not found (traffic.httpRoute)")
        try:
            rules = rules_for(route, md, traffic, md.traffic.rule_index)
        except ValueError as exc:
            raise RouteError(str(exc)) from exc
        if rules == (route.get("spec") or {}).get("rules"):
            return
        patch = {
            "metadata": {"resourceVersion": route["metadata"]["resourceVersion"]},
            "spec": {"rules": rules},
        }
        try:
            await self.kube.merge_patch_object(API_VERSION, "HTTPRoute", md.namespace, name, patch)
        except ApiException as exc:
            if exc.status != 422:
                raise  # 409 (the user edited the route meanwhile) is retried by the caller
            raise RouteRejected(f"{where} refused the managed rule: {_message(exc)}") from exc


def _message(exc: ApiException) -> str:
    """The API server's own explanation (it names the field and the CEL message)."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.body or exc.reason)


def rules_for(
    route: dict[str, Any], md: ModelDeployment, traffic: dict[str, Any], rule_index: int
) -> list[dict[str, Any]]:
    """The route's rules with the managed rule's backends and mirror set from traffic.

    Other rules and the rest of the managed rule (matches, name, timeouts, the
    user's filters, mirrors to other backends included) are kept; only
    `backendRefs` and the RequestMirror filter to this ModelDeployment's shadow
    Service are the operator's. References are written with the defaults the
    Gateway API schema would add (group "", kind Service), so the route read
    back from the API server compares equal and a steady reconcile sends nothing.
    """
    rules = [dict(r) for r in (route.get("spec") or {}).get("rules") or [{}]]
    if rule_index >= len(rules):
        raise ValueError(
            f"HTTPRoute {route.get('metadata', {}).get('name')} has {len(rules)} rule(s); "
            f"traffic.httpRoute.ruleIndex {rule_index} does not exist"
        )
    tracks = traffic.get("tracks") or {}
    weight = int(traffic.get("canaryWeight", 0)) if "canary" in tracks else 0
    backends = [{**_service_ref(md, "stable"), "weight": 100 - weight}]
    if "canary" in tracks:
        backends.append({**_service_ref(md, "canary"), "weight": weight})
    rule = rules[rule_index]
    shadow = _service_ref(md, "shadow")
    filters = [f for f in rule.get("filters") or [] if not _mirrors_to(f, shadow)]
    if "shadow" in tracks and traffic.get("mirrorPercent", 0) > 0:
        filters.append(
            {
                "type": "RequestMirror",
                "requestMirror": {"backendRef": shadow, "percent": int(traffic["mirrorPercent"])},
            }
        )
    rule["backendRefs"] = backends
    if filters:
        rule["filters"] = filters
    else:
        rule.pop("filters", None)
    rules[rule_index] = rule
    return rules


def _service_ref(md: ModelDeployment, track: str) -> dict[str, Any]:
    return {
        "group": "",
        "kind": "Service",
        "name": manifests.service_name(md, track),
        "port": manifests.PORT,
    }


def _mirrors_to(route_filter: dict[str, Any], ref: dict[str, Any]) -> bool:
    """Whether a filter is a RequestMirror to the Service `ref` (in the route's namespace)."""
    if route_filter.get("type") != "RequestMirror":
        return False
    target = (route_filter.get("requestMirror") or {}).get("backendRef") or {}
    return (
        target.get("name") == ref["name"]
        and target.get("group", "") == ""
        and target.get("kind", "Service") == "Service"
        and "namespace" not in target
    )
