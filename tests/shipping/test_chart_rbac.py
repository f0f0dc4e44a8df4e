"""The chart's RBAC is least privilege: exactly the verbs the operator uses.

The table below is the specification (derived from what the operator does,
see docs/contracts.md); the test compares the rendered Roles/ClusterRoles
with it in both watch modes, so a widened rule fails here first.
"""

from __future__ import annotations

from typing import Any

import pytest

from . import chart

READ = {"get", "list", "watch"}
OWN = READ | {"create", "update", "patch", "delete"}

# (apiGroup, resource) -> verbs, inside every watched namespace.
WORKLOADS: dict[tuple[str, str], set[str]] = {
    ("modeldeploy.io", "modeldeployments"): READ | {"patch"},
    ("modeldeploy.io", "modeldeployments/status"): {"get", "patch"},
    ("modeldeploy.io", "modeldeployments/finalizers"): {"update"},
    ("apps", "deployments"): OWN,
    ("", "services"): OWN,
    ("", "serviceaccounts"): OWN,
    ("rbac.authorization.k8s.io", "roles"): OWN,
    ("rbac.authorization.k8s.io", "rolebindings"): OWN,
    ("autoscaling", "horizontalpodautoscalers"): OWN,
    ("", "pods"): READ,
    ("discovery.k8s.io", "endpointslices"): READ,
    ("", "events"): {"create", "patch"},
    ("policy", "poddisruptionbudgets"): {"get", "create", "patch"},
}
GATEWAY = {("gateway.networking.k8s.io", "httproutes"): {"get", "patch"}}
CRDS = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
NAMESPACES = {("", "namespaces"): {"list", "watch"}}
PEERING = {"get", "list", "watch", "patch"}


def flatten(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(group, resource) -> verbs; refuses wildcards and resourceNames-free surprises."""
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), f"wildcard in {field}: {rule}"
        assert "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def roles(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[tuple[str, str], set[str]]]:
    return {
        f"{d['metadata'].get('namespace', '')}/{d['metadata']['name']}": flatten(d["rules"])
        for d in chart.by_kind(docs, kind)
    }


def test_cluster_mode_grants_exactly_the_operator_needs(helm: chart.Helm) -> None:
    docs = helm.render()
    assert chart.by_kind(docs, "Role") == []
    assert roles(docs, "ClusterRole") == {"/md-modeldeploy": WORKLOADS | CRDS}
    binding = chart.one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "md-modeldeploy"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "md-modeldeploy", "namespace": "modeldeploy-system"}
    ]


def test_namespaced_mode_has_one_role_per_namespace_and_no_cluster_write(
    helm: chart.Helm,
) -> None:
    docs = helm.render({"watch.allNamespaces": False, "watch.namespaces": ["team-a", "team-b"]})
    assert roles(docs, "Role") == {
        "team-a/md-modeldeploy": WORKLOADS,
        "team-b/md-modeldeploy": WORKLOADS,
    }
    # The only cluster-scoped grant is read-only discovery.
    assert roles(docs, "ClusterRole") == {"/md-modeldeploy-discovery": CRDS | NAMESPACES}
    bindings = chart.by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for b in bindings:
        assert b["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "md-modeldeploy",
        }


def test_namespaced_mode_without_discovery_has_no_cluster_roles(helm: chart.Helm) -> None:
    docs = helm.render(
        {"watch.allNamespaces": False, "watch.namespaces": ["team-a"], "rbac.discovery": False}
    )
    assert chart.by_kind(docs, "ClusterRole") == []
    assert chart.by_kind(docs, "ClusterRoleBinding") == []


@pytest.mark.parametrize(
    ("values", "scope", "resource"),
    [
        ({"replicaCount": 2}, "/md-modeldeploy", "clusterkopfpeerings"),
        ({"peering.enabled": True}, "/md-modeldeploy", "clusterkopfpeerings"),
        (
            {"replicaCount": 2, "watch.allNamespaces": False, "watch.namespaces": ["team-a"]},
            "team-a/md-modeldeploy",
            "kopfpeerings",
        ),
    ],
)
def test_peering_adds_only_its_own_resource(
    helm: chart.Helm, values: dict[str, Any], scope: str, resource: str
) -> None:
    docs = helm.render(values)
    kind = "Role" if scope.split("/")[0] else "ClusterRole"
    grants = roles(docs, kind)[scope]
    assert grants.pop(("kopf.dev", resource)) == PEERING
    assert grants in (WORKLOADS, WORKLOADS | CRDS)


def test_gateway_api_grant_is_opt_in(helm: chart.Helm) -> None:
    off = roles(helm.render(), "ClusterRole")["/md-modeldeploy"]
    on = roles(helm.render({"rbac.gatewayAPI": True}), "ClusterRole")["/md-modeldeploy"]
    assert {key: on[key] for key in set(on) - set(off)} == GATEWAY


def test_operator_holds_what_it_grants_the_router(helm: chart.Helm) -> None:
    """RBAC refuses to let a subject grant what it does not hold (no escalate/bind here)."""
    grants = roles(helm.render(), "ClusterRole")["/md-modeldeploy"]
    router_needs = {
        ("modeldeploy.io", "modeldeployments"): READ,
        ("discovery.k8s.io", "endpointslices"): READ,
    }
    for key, verbs in router_needs.items():
        assert verbs <= grants[key], key
    assert not any({"escalate", "bind", "impersonate"} & v for v in grants.values())


def test_rbac_create_false_renders_no_rbac(helm: chart.Helm) -> None:
    docs = helm.render({"rbac.create": False})
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert chart.by_kind(docs, kind) == [], kind
