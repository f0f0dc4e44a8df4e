"""The chart lints strictly, renders in both watch modes, and refuses bad values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from . import chart


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = chart.one(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"watch.allNamespaces": False, "watch.namespaces": ["team-a", "team-b"]},
        {
            "replicaCount": 3,
            "metrics.serviceMonitor.enabled": True,
            "metrics.podMonitor.enabled": True,
            "metrics.prometheusRule.enabled": True,
            "rbac.gatewayAPI": True,
        },
    ],
    ids=["cluster-wide", "namespaced", "everything-on"],
)
def test_lint_strict_is_clean(helm: chart.Helm, values: dict[str, Any]) -> None:
    proc = helm.run(
        "lint", "--strict", "--kube-version", chart.KUBE_VERSION, str(chart.CHART),
        *chart.set_flags(values),
    )  # fmt: skip
    assert "0 chart(s) failed" in proc.stdout, proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


def test_renders_without_a_kube_version(helm: chart.Helm) -> None:
    """helm's default Kubernetes version satisfies the chart's kubeVersion.

    A helm built from its Go module without the version ldflags claims v1.20
    and refuses the chart; hack/build-binaries.sh sets them as helm's Makefile does.
    """
    proc = helm.run("template", chart.RELEASE, str(chart.CHART), check=False)
    assert proc.returncode == 0, proc.stderr
    assert "kind: Deployment" in proc.stdout


def test_cluster_wide_operator_deployment(helm: chart.Helm) -> None:
    docs = helm.render({"prometheus.url": "http://prom.monitoring:9090", "logLevel": "debug"})
    deployment = chart.one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(docs)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container["image"] == "ghcr.io/modeldeploy/operator:0.1.0"
    assert container["args"] == [
        "--prometheus-url=http://prom.monitoring:9090",
        "--all-namespaces",
        "--metrics-port=8080",
        "--prometheus-timeout=5",
        "--tick=2",
        "--log-format=json",
    ]
    assert pod["serviceAccountName"] == "md-modeldeploy"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["resources"]["limits"]["memory"]
    env = {
        e["name"]: e.get("value") or e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
    }
    assert "POD_IP" not in env  # the metrics server listens on all the pod's interfaces
    assert env["MODELDEPLOY_LOG_LEVEL"] == "debug"
    assert chart.one(docs, "ServiceAccount")["metadata"]["name"] == "md-modeldeploy"
    names = {d["metadata"]["name"] for d in chart.by_kind(docs, "CustomResourceDefinition")}
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= names


def test_namespaced_operator_args_and_peering(helm: chart.Helm) -> None:
    docs = helm.render(
        {
            "watch.allNamespaces": False,
            "watch.namespaces": ["team-a", "team-b"],
            "replicaCount": 2,
            "image.digest": "sha256:" + "ab" * 32,
            "routerImage": "registry.example/router:1",
        }
    )
    deployment = chart.one(docs, "Deployment")
    container = operator_container(docs)
    assert container["image"] == "ghcr.io/modeldeploy/operator@sha256:" + "ab" * 32
    args = container["args"]
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace=")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]
    assert "--peering=modeldeploy" in args
    assert "--router-image=registry.example/router:1" in args
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    peerings = chart.by_kind(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert chart.by_kind(docs, "ClusterKopfPeering") == []


def test_monitoring_objects_render_only_when_enabled(helm: chart.Helm) -> None:
    kinds = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
    default = helm.render()
    for kind in kinds:
        assert chart.by_kind(default, kind) == [], kind
    docs = helm.render(
        {
            "metrics.serviceMonitor.enabled": True,
            "metrics.podMonitor.enabled": True,
            "metrics.prometheusRule.enabled": True,
        }
    )
    pod_monitor = chart.one(docs, "PodMonitor")
    assert pod_monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "modeldeploy"
    }
    rule = chart.one(docs, "PrometheusRule")
    groups = {g["name"] for g in rule["spec"]["groups"]}
    assert {"modeldeploy.rollouts", "modeldeploy.operator", "modeldeploy.predictors"} == groups
    monitor = chart.one(docs, "ServiceMonitor")
    service = chart.one(docs, "Service")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def _alerts(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    rule = chart.one(docs, "PrometheusRule")
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def test_alerts_can_be_tuned_per_alert(helm: chart.Helm) -> None:
    default = _alerts(helm.render({"metrics.prometheusRule.enabled": True}))
    tuned = _alerts(
        helm.render(
            {
                "metrics.prometheusRule.enabled": True,
                "metrics.prometheusRule.additionalRuleLabels": {"team": "ml-platform"},
                "metrics.prometheusRule.rules": {
                    "ModelDeploymentFailed": {"for": "10m", "labels": {"severity": "warning"}},
                    "ModelDeploymentAnalysisFailing": {"enabled": False},
                },
            }
        )
    )
    assert default["ModelDeploymentFailed"]["for"] == "5m"
    assert default["ModelDeploymentFailed"]["labels"] == {"severity": "critical"}
    assert tuned["ModelDeploymentFailed"]["for"] == "10m"
    assert tuned["ModelDeploymentFailed"]["labels"] == {
        "severity": "warning",
        "team": "ml-platform",
    }
    assert "ModelDeploymentAnalysisFailing" not in tuned
    assert set(tuned) == set(default) - {"ModelDeploymentAnalysisFailing"}
    untouched = tuned["ModelDeploymentRolledBack"]
    assert untouched["expr"] == default["ModelDeploymentRolledBack"]["expr"]
    assert untouched["labels"] == {"severity": "warning", "team": "ml-platform"}


def test_a_misspelt_alert_name_is_refused(helm: chart.Helm) -> None:
    proc = helm.template(
        {
            "metrics.prometheusRule.enabled": True,
            "metrics.prometheusRule.rules": {"ModelDeploymentFaild": {"enabled": False}},
        },
        check=False,
    )
    assert proc.returncode != 0
    assert "ModelDeploymentFaild: no such alert" in proc.stderr
    assert "ModelDeploymentFailed" in proc.stderr  # the known names are listed


def test_dashboard_configmap_carries_the_dashboard(helm: chart.Helm) -> None:
    docs = helm.render({"grafana.dashboard.labelKey": "grafana_dashboard"})
    (cm,) = [
        d for d in chart.by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("dashboard")
    ]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["modeldeploy.json"])
    source = json.loads((chart.REPO / "docs" / "grafana" / "modeldeploy.json").read_text())
    assert dashboard == source
    off = helm.render({"grafana.dashboard.enabled": False})
    assert [
        d for d in chart.by_kind(off, "ConfigMap") if "dashboard" in d["metadata"]["name"]
    ] == []


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"logLevel": "loud"}, "logLevel"),
        ({"replicaCount": -1}, "replicaCount"),
        ({"prometheus.url": "prometheus:9090"}, "prometheus"),
        ({"watch.allNamespaces": False, "watch.namespaces": []}, "namespaces"),
        ({"watch.namespaces": ["Not_A_Namespace"]}, "namespaces"),
        ({"securityContext.allowPrivilegeEscalation": True}, "allowPrivilegeEscalation"),
        ({"podSecurityContext.runAsUser": 0}, "runAsUser"),
        ({"image.digest": "latest"}, "digest"),
        ({"tick": 0}, "tick"),
        ({"logFormat": "xml"}, "logFormat"),
        ({"metrics.serviceMonitr": {"enabled": True}}, "serviceMonitr"),
        ({"replicas": 2}, "replicas"),
    ],
)
def test_schema_refuses_bad_values(
    helm: chart.Helm, values: dict[str, Any], complaint: str
) -> None:
    proc = helm.template(values, check=False)
    assert proc.returncode != 0, f"helm accepted {values}"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert complaint in proc.stderr, proc.stderr
