"""The chart on a real API server: dry-run, install/upgrade/uninstall, RBAC.

Runs on the local cluster (or kind, via hack/e2e-kind.sh). Nothing waits
for the operator pod: these tests are about what the chart asks the API
server for, and what the API server then allows the operator to do.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from modeldeploy_devcluster import procs

from . import chart, scenario

pytestmark = pytest.mark.cluster

ACCOUNT = "{ns}/{release}-modeldeploy"
# RBAC-only checks need no operator process (the local cluster's node would
# run one for every replica): zero replicas keep them quick and quiet.
NO_PODS = {"replicaCount": 0}


def _apply_crds(kube: scenario.Kube, helm: chart.Helm) -> None:
    # CRDs for real (cluster-scoped, shared, idempotent): the peering objects
    # of the dry-run need their kinds to exist.
    kube.apply(chart.by_kind(helm.render(), "CustomResourceDefinition"), "--force-conflicts")
    for crd in ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
        kube.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_rendered_manifests_pass_server_side_dry_run(
    kube: scenario.Kube, helm: chart.Helm, namespaces: list[str], mode: str
) -> None:
    system, team, _ = namespaces
    _apply_crds(kube, helm)
    values = {
        "replicaCount": 2,
        "rbac.gatewayAPI": True,
        "metrics.serviceMonitor.enabled": False,  # no prometheus-operator CRDs here
    }
    if mode == "namespaced":
        values |= {"watch.allNamespaces": False, "watch.namespaces": [team]}
    docs = [
        d for d in helm.render(values, namespace=system) if d["kind"] != "CustomResourceDefinition"
    ]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ServiceAccount", "ConfigMap", "Service"} <= kinds
    proc = kube.apply(docs, "--dry-run=server")
    assert proc.stdout.count("(server dry run)") == len(docs), proc.stdout


def test_install_upgrade_uninstall_leaves_no_orphans(
    kube: scenario.Kube, cluster_helm: chart.Helm, namespaces: list[str]
) -> None:
    system, team, _ = namespaces
    release = scenario.release_name()
    proc = scenario.install(cluster_helm, release, system, scenario.namespaced_values([team]))
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert f"the namespaces: {team}" in notes
    assert f"rollout status deployment/{release}-modeldeploy" in notes
    assert "kubectl apply --server-side -f modeldeploy/crds/" in notes
    installed = kube.owned_by_release(release)
    assert f"deployment.apps/{release}-modeldeploy" in installed
    assert f"role.rbac.authorization.k8s.io/{release}-modeldeploy" in installed

    # Upgrade: two replicas turn peering on, the args follow.
    scenario.install(
        cluster_helm,
        release,
        system,
        scenario.namespaced_values([team], replicaCount=2, logLevel="debug"),
        upgrade=True,
    )
    deployment = kube.run(
        "get", "deployment", f"{release}-modeldeploy", "-n", system,
        "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].args}",
    ).stdout  # fmt: skip
    assert deployment.startswith("2 ")
    assert "--peering=modeldeploy" in deployment
    upgraded = kube.owned_by_release(release)
    assert "kopfpeering.kopf.dev/modeldeploy" in upgraded

    cluster_helm.run("uninstall", release, "--namespace", system, "--wait", timeout=300)
    scenario.wait_for(
        lambda: not kube.owned_by_release(release), 120, f"objects of release {release} to go"
    )
    # Only the CRDs stay (Helm never deletes crds/): NOTES.txt and docs/gitops.md say so.
    for crd in chart.by_kind(cluster_helm.render(), "CustomResourceDefinition"):
        kube.run("get", "crd", crd["metadata"]["name"])


# (verb, resource, allowed in a watched namespace)
NAMESPACED_CHECKS = [
    ("create", "deployments.apps", True),
    ("delete", "services", True),
    ("create", "rolebindings.rbac.authorization.k8s.io", True),
    ("patch", "modeldeployments.modeldeploy.io/status", True),
    ("watch", "endpointslices.discovery.k8s.io", True),
    ("create", "events", True),
    ("list", "pods", True),
    ("create", "horizontalpodautoscalers.autoscaling", True),
    ("delete", "horizontalpodautoscalers.autoscaling", True),
    ("patch", "horizontalpodautoscalers.autoscaling", True),
    ("watch", "horizontalpodautoscalers.autoscaling", True),
    # Denied: what the operator never does.
    ("delete", "modeldeployments.modeldeploy.io", False),
    ("update", "modeldeployments.modeldeploy.io", False),
    ("create", "pods", False),
    ("get", "secrets", False),
    ("list", "configmaps", False),
    ("update", "deployments.apps/scale", False),
    ("create", "pods/exec", False),
    ("delete", "endpointslices.discovery.k8s.io", False),
    ("escalate", "roles.rbac.authorization.k8s.io", False),
    ("bind", "roles.rbac.authorization.k8s.io", False),
    ("delete", "events", False),
    ("patch", "httproutes.gateway.networking.k8s.io", False),
    # HPAs own the replicas: the operator writes the HPA's spec, never its status.
    ("patch", "horizontalpodautoscalers.autoscaling/status", False),
]


def test_service_account_rbac_namespaced(
    kube: scenario.Kube, cluster_helm: chart.Helm, namespaces: list[str]
) -> None:
    system, team, other = namespaces
    release = scenario.release_name()
    scenario.install(cluster_helm, release, system, scenario.namespaced_values([team], **NO_PODS))
    sa = ACCOUNT.format(ns=system, release=release)
    try:
        wrong = [
            f"{verb} {resource}: expected {'allowed' if allowed else 'denied'}"
            for verb, resource, allowed in NAMESPACED_CHECKS
            if kube.can_i(sa, verb, resource, team) != allowed
        ]
        assert not wrong, "\n".join(wrong)
        # kubectl's own `auth can-i --as` agrees (for types it can discover).
        agree = [("create", "deployments.apps"), ("get", "secrets"),
                 ("patch", "horizontalpodautoscalers.autoscaling")]  # fmt: skip
        for verb, resource in agree:
            expected = kube.can_i(sa, verb, resource, team)
            assert kube.can_i_kubectl(sa, verb, resource, team) == expected, (verb, resource)
        # Nothing at all outside the watched namespaces, nothing cluster-wide.
        outside = [("list", "deployments.apps"), ("create", "services"),
                   ("create", "horizontalpodautoscalers.autoscaling")]  # fmt: skip
        for verb, resource in outside:
            assert not kube.can_i(sa, verb, resource, other), (verb, resource, other)
            assert not kube.can_i(sa, verb, resource), (verb, resource)
        assert not kube.can_i(sa, "list", "modeldeployments.modeldeploy.io", system)
        assert not kube.can_i(sa, "create", "clusterroles.rbac.authorization.k8s.io")
        assert not kube.can_i(sa, "create", "namespaces")
        assert not kube.can_i(sa, "delete", "customresourcedefinitions.apiextensions.k8s.io")
        # Read-only discovery is the one cluster-scoped grant.
        assert kube.can_i(sa, "watch", "customresourcedefinitions.apiextensions.k8s.io")
        assert kube.can_i(sa, "list", "namespaces")
    finally:
        cluster_helm.run("uninstall", release, "--namespace", system, check=False)


def test_service_account_token_is_enforced(
    kube: scenario.Kube, cluster_helm: chart.Helm, namespaces: list[str], tmp_path
) -> None:
    """Not impersonation: a real token of the chart's ServiceAccount, real 403s."""
    system, team, other = namespaces
    release = scenario.release_name()
    scenario.install(cluster_helm, release, system, scenario.namespaced_values([team], **NO_PODS))
    try:
        sa = ACCOUNT.format(ns=system, release=release)
        as_sa = scenario.Kube(kube.service_account_kubeconfig(sa, str(tmp_path / "sa.yaml")))
        assert as_sa.run("get", "deployments", "-n", team).returncode == 0
        as_sa.run(
            "create", "serviceaccount", "probe", "-n", team, "--dry-run=server"
        )  # allowed: the operator makes the router's ServiceAccount
        for args in (["get", "secrets", "-n", team], ["get", "deployments", "-n", other]):
            denied = as_sa.run(*args, check=False)
            assert denied.returncode != 0 and "Forbidden" in denied.stderr, (args, denied.stderr)
    finally:
        cluster_helm.run("uninstall", release, "--namespace", system, check=False)


def test_service_account_rbac_cluster_wide(
    kube: scenario.Kube, cluster_helm: chart.Helm, namespaces: list[str]
) -> None:
    system, team, other = namespaces
    release = scenario.release_name()
    scenario.install(cluster_helm, release, system, {"rbac.gatewayAPI": True, **NO_PODS})
    sa = ACCOUNT.format(ns=system, release=release)
    try:
        for ns in (team, other):
            assert kube.can_i(sa, "create", "deployments.apps", ns)
            assert kube.can_i(sa, "patch", "httproutes.gateway.networking.k8s.io", ns)
            assert not kube.can_i(sa, "get", "secrets", ns)
            assert not kube.can_i(sa, "create", "httproutes.gateway.networking.k8s.io", ns)
        assert kube.can_i(sa, "watch", "modeldeployments.modeldeploy.io")
        assert not kube.can_i(sa, "list", "secrets")
        assert not kube.can_i(sa, "list", "namespaces")  # cluster-wide Kopf never lists them
        assert not kube.can_i(sa, "create", "clusterrolebindings.rbac.authorization.k8s.io")
        assert not kube.can_i(sa, "patch", "nodes")
    finally:
        cluster_helm.run("uninstall", release, "--namespace", system, check=False)


def test_operator_process_with_the_charts_service_account(
    kube: scenario.Kube, cluster_helm: chart.Helm, namespaces: list[str], tmp_path
) -> None:
    """RBAC sufficiency: the operator, authenticated by the chart's ServiceAccount token."""
    operator = shutil.which("modeldeploy-operator") or str(
        Path(sys.executable).with_name("modeldeploy-operator")
    )
    system, team, _ = namespaces
    release = scenario.release_name()
    scenario.install(cluster_helm, release, system, scenario.namespaced_values([team], **NO_PODS))
    config = kube.service_account_kubeconfig(
        ACCOUNT.format(ns=system, release=release), str(tmp_path / "sa.yaml")
    )
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [operator, "--kubeconfig", config, "--namespace", team,
             "--prometheus-url", "http://127.0.0.1:9", "--metrics-port", "0"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        scenario.reconcile_example(kube, team, lambda: log.read_text(errors="replace"))
    finally:
        procs.stop(proc, grace=20.0)
        cluster_helm.run("uninstall", release, "--namespace", system, check=False)
