"""spec.predictor.template on the real API server: schema, CEL, explain, and the
Deployment built from it is accepted by the API server's own Pod validation."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml
from cluster_helpers import GROUP, PLURAL, ROOT, VERSION, apply_crd
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from modeldeploy_operator import kube as kubemod
from modeldeploy_operator import manifests, spec
from modeldeploy_operator.traffic import builtin

pytestmark = pytest.mark.cluster

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"team": "risk"}, "annotations": {"cost-center": "42"}},
    "spec": {
        "serviceAccountName": "fraud-reader",
        "nodeSelector": {"pool": "inference"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"modeldeploy.io/name": "fraud"}},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"modeldeploy.io/name": "fraud"}},
            }
        ],
        "priorityClassName": "serving",
        "imagePullSecrets": [{"name": "registry"}],
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
        "volumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
        "containers": [
            {
                "name": "predictor",
                "env": [
                    {"name": "SSL_CERT_FILE", "value": "/ca/ca.crt"},
                    {
                        "name": "TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}},
                    },
                ],
                "envFrom": [{"secretRef": {"name": "s3"}}],
                "volumeMounts": [{"name": "ca", "mountPath": "/ca", "readOnly": True}],
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2}},
                "securityContext": {"runAsGroup": 3000},
            }
        ],
    },
}


def body(template: Any = TEMPLATE, **model: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud"},
        "spec": {
            "model": {"name": "fraud", "version": "1.0.0", "uri": "/models/fraud/1", **model},
            "predictor": {"image": "ghcr.io/modeldeploy/predictor:0.1.0", "template": template},
        },
    }


def container(**fields: Any) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "predictor", **fields}]}}


BAD = {
    "container-not-predictor": (
        {"spec": {"containers": [{"name": "sidecar"}]}},
        ["spec.predictor.template.spec.containers[0].name", "Unsupported value"],
    ),
    "reserved-volume-name": (
        {"spec": {"volumes": [{"name": "modeldeploy-store", "emptyDir": {}}]}},
        ["volume names starting with modeldeploy- are reserved"],
    ),
    "bad-toleration-operator": (
        {"spec": {"tolerations": [{"key": "a", "operator": "Maybe"}]}},
        ["spec.predictor.template.spec.tolerations[0].operator", "Unsupported value"],
    ),
    "bad-quantity": (
        container(resources={"requests": {"cpu": "lots"}}),
        ["spec.predictor.template.spec.containers[0].resources.requests.cpu", "should match"],
    ),
    "mount-without-path": (
        container(volumeMounts=[{"name": "ca"}]),
        ["spec.predictor.template.spec.containers[0].volumeMounts[0].mountPath", "Required"],
    ),
    "spread-without-key": (
        {"spec": {"topologySpreadConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "X"}]}},
        ["topologySpreadConstraints[0].topologyKey", "Required value"],
    ),
}


@pytest.fixture
def api(cluster) -> client.ApiClient:
    api = cluster.api_client()
    apply_crd(api)
    return api


def create(api: client.ApiClient, namespace: str, obj: dict[str, Any], **kw: Any) -> dict:
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, obj, **kw
    )


def dry_run_apply(api: client.ApiClient, namespace: str, obj: dict[str, Any]) -> dict:
    """Server-side apply with dryRun=All: validated and defaulted, nothing stored."""
    resource = DynamicClient(api).resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    return resource.server_side_apply(
        body=obj,
        name=obj["metadata"]["name"],
        namespace=namespace,
        field_manager=kubemod.FIELD_MANAGER,
        dry_run="All",
    ).to_dict()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_template_is_refused_with_a_readable_message(api, namespace, case):
    template, expected = BAD[case]
    with pytest.raises(ApiException) as info:
        create(api, namespace, body(template))
    assert info.value.status == 422, info.value.body
    message = json.loads(info.value.body)["message"]
    for text in expected:
        assert text in message, f"{case}: {text!r} not in {message!r}"


def test_operator_owned_container_fields_are_unknown_fields(api, namespace):
    """image/args/ports/probes have no place in the schema: strict validation refuses them."""
    with pytest.raises(ApiException) as info:
        create(
            api,
            namespace,
            body(container(image="evil:latest", args=["sh"])),
            field_validation="Strict",
        )
    assert info.value.status == 400, info.value.body  # strict decoding (kubectl's default)
    message = json.loads(info.value.body)["message"]
    assert 'unknown field "spec.predictor.template.spec.containers[0].image"' in message, message


def test_template_is_kept_and_its_deployment_is_a_valid_pod(api, namespace):
    obj = create(
        api,
        namespace,
        body(credentials={"secretRef": {"name": "s3-reader"}}, uri="pvc://bundles/fraud/1"),
    )
    assert obj["spec"]["predictor"]["template"] == TEMPLATE  # nothing pruned
    md = spec.parse(obj)
    # The API server's own Pod validation of the merged result (dry run: no pods).
    applied = dry_run_apply(api, namespace, manifests.revision_deployment(md, 1, "stable"))
    pod = applied["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "risk"
    assert pod["spec"]["serviceAccountName"] == "fraud-reader"
    assert pod["spec"]["securityContext"]["fsGroup"] == 2000
    assert {v["name"] for v in pod["spec"]["volumes"]} >= {"ca", "modeldeploy-store"}
    (c,) = pod["spec"]["containers"]
    assert c["envFrom"] == [{"secretRef": {"name": "s3-reader"}}, {"secretRef": {"name": "s3"}}]
    assert c["resources"]["limits"]["cpu"] == "2"
    assert "/var/lib/modeldeploy/store/fraud/1" in c["args"]


def test_router_template_subset_on_the_api_server(api, namespace):
    router = {
        "template": {
            "metadata": {"annotations": {"cost-center": "42"}},
            "spec": {
                "nodeSelector": {"pool": "edge"},
                "tolerations": [{"key": "edge", "operator": "Exists"}],
                "containers": [{"name": "router", "resources": {"limits": {"memory": "256Mi"}}}],
            },
        }
    }
    obj = body({})
    obj["spec"]["traffic"] = {"provider": "builtin", "router": router}
    created = create(api, namespace, obj)
    # Nothing pruned; the API server adds only the replicas default.
    assert created["spec"]["traffic"]["router"] == {**router, "replicas": 2}
    md = spec.parse(created)
    deployment = builtin.objects(md, "ghcr.io/modeldeploy/predictor:0.1.0")[3]
    applied = dry_run_apply(api, namespace, deployment)
    assert applied["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "edge"}
    # The router keeps its own ServiceAccount: the subset has no field for it.
    obj["metadata"]["name"] = "fraud2"
    obj["spec"]["traffic"]["router"]["template"]["spec"]["serviceAccountName"] = "other"
    with pytest.raises(ApiException) as info:
        create(api, namespace, obj, field_validation="Strict")
    assert "unknown field" in json.loads(info.value.body)["message"]
    gateway = body({})
    gateway["metadata"]["name"] = "fraud3"
    gateway["spec"]["traffic"] = {
        "provider": "gatewayapi",
        "httpRoute": {"name": "web"},
        "router": router,
    }
    with pytest.raises(ApiException) as info:
        create(api, namespace, gateway)
    assert "only with traffic.provider builtin" in json.loads(info.value.body)["message"]


def test_kubectl_explain_describes_the_template(cluster, api):
    def explain(path: str) -> str:
        out = subprocess.run(
            ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "explain", path],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return " ".join(out.stdout.split())

    text = explain("md.spec.predictor.template")
    assert "image, command, args, ports and probes are always the operator's" in text
    assert "serviceAccountName" in explain("md.spec.predictor.template.spec")
    assert "IRSA" in explain("md.spec.predictor.template.spec.serviceAccountName")
    assert "secretRef" in explain("md.spec.model.credentials")


OTHER_OBJECTS = [
    (path, doc)
    for path in sorted((ROOT / "examples").glob("*/*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc
    and doc["kind"] != "ModelDeployment"
    and path.parent.name != "04-gatewayapi"  # its Gateway API objects: test_gatewayapi_cluster
]


@pytest.mark.parametrize(
    ("path", "doc"), OTHER_OBJECTS, ids=[f"{p.parent.name}-{d['kind']}" for p, d in OTHER_OBJECTS]
)
def test_example_companion_objects_are_accepted(api, namespace, path, doc):
    """The ServiceAccount, Secret and PVC beside the examples pass the API server (dry run)."""
    resource = DynamicClient(api).resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    resource.create(body=doc, namespace=namespace, dry_run="All")
