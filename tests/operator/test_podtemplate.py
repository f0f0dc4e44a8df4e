"""spec.predictor.template merged with the generated pod; store volumes and credentials."""

from __future__ import annotations

import copy

import pytest
from md_factories import md
from modeldeploy_operator import manifests, podtemplate, stores
from modeldeploy_operator.traffic import builtin

IMAGE = "ghcr.io/modeldeploy/predictor:0.1.0"


def generated() -> dict:
    """A generated pod template like the operator's, hardened as the operator makes it."""
    return {
        "metadata": {
            "labels": {"modeldeploy.io/revision": "fraud-1", "app.kubernetes.io/component": "x"},
            "annotations": {"prometheus.io/scrape": "true"},
        },
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "modeldeploy-cache", "emptyDir": {}}],
            "containers": [
                {
                    "name": "predictor",
                    "image": IMAGE,
                    "args": ["serve", "--bundle", "/models/1"],
                    "env": [{"name": "MODELDEPLOY_TRACK", "value": "canary"}],
                    "volumeMounts": [{"name": "modeldeploy-cache", "mountPath": "/cache"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                    "securityContext": {
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def test_no_template_is_the_generated_pod_unchanged():
    pod = generated()
    assert podtemplate.merge_pod(pod, {}) == pod
    assert podtemplate.merge_pod(pod, None) == pod


def test_user_pod_fields_are_taken_and_ours_kept():
    tolerations = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    template = {
        "metadata": {
            "labels": {"team": "risk", "modeldeploy.io/revision": "mine"},
            "annotations": {"cost-center": "42", "prometheus.io/scrape": "false"},
        },
        "spec": {
            "serviceAccountName": "fraud-reader",
            "nodeSelector": {"pool": "inference"},
            "tolerations": tolerations,
            "affinity": {"nodeAffinity": {"x": 1}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}],
            "priorityClassName": "serving",
            "imagePullSecrets": [{"name": "registry"}],
        },
    }
    pod = podtemplate.merge_pod(generated(), template)
    meta = pod["metadata"]
    assert meta["labels"] == {
        "team": "risk",
        "modeldeploy.io/revision": "fraud-1",  # selector labels are ours
        "app.kubernetes.io/component": "x",
    }
    assert meta["annotations"] == {"cost-center": "42", "prometheus.io/scrape": "true"}
    spec = pod["spec"]
    for key, value in template["spec"].items():
        assert spec[key] == value, key
    (c,) = spec["containers"]
    assert c == generated()["spec"]["containers"][0]  # container untouched


def test_container_settings_merge_by_their_keys():
    template = {
        "spec": {
            "volumes": [
                {"name": "ca", "configMap": {"name": "corp-ca"}},
                {"name": "modeldeploy-cache", "hostPath": {"path": "/"}},  # ours win
            ],
            "containers": [
                {
                    "name": "predictor",
                    "env": [
                        {"name": "MODELDEPLOY_TRACK", "value": "stable"},  # ours win
                        {"name": "SSL_CERT_FILE", "value": "/ca/ca.crt"},
                    ],
                    "envFrom": [{"secretRef": {"name": "s3"}}],
                    "volumeMounts": [
                        {"name": "ca", "mountPath": "/ca", "readOnly": True},
                        {"name": "ca", "mountPath": "/cache"},  # ours win
                    ],
                    "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "1Gi"}},
                }
            ],
        }
    }
    pod = podtemplate.merge_pod(generated(), template)
    spec = pod["spec"]
    assert spec["volumes"] == [
        {"name": "modeldeploy-cache", "emptyDir": {}},
        {"name": "ca", "configMap": {"name": "corp-ca"}},
    ]
    (c,) = spec["containers"]
    assert c["env"] == [
        {"name": "MODELDEPLOY_TRACK", "value": "canary"},
        {"name": "SSL_CERT_FILE", "value": "/ca/ca.crt"},
    ]
    assert c["envFrom"] == [{"secretRef": {"name": "s3"}}]
    assert c["volumeMounts"] == [
        {"name": "modeldeploy-cache", "mountPath": "/cache"},
        {"name": "ca", "mountPath": "/ca", "readOnly": True},
    ]
    assert c["resources"] == {
        "requests": {"cpu": "2", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert c["image"] == IMAGE and c["args"] == ["serve", "--bundle", "/models/1"]


def test_security_context_is_hardened_unless_the_user_overrides_a_field():
    template = {
        "spec": {
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "containers": [
                {"name": "predictor", "securityContext": {"readOnlyRootFilesystem": False}}
            ],
        }
    }
    pod = podtemplate.merge_pod(generated(), template)
    assert pod["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 1000,
        "fsGroup": 2000,
    }
    assert pod["spec"]["containers"][0]["securityContext"] == {
        "readOnlyRootFilesystem": False,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_merge_does_not_mutate_its_inputs():
    pod, template = (
        generated(),
        {"spec": {"containers": [{"name": "predictor", "env": [{"name": "A"}]}]}},
    )
    before = copy.deepcopy((pod, template))
    merged = podtemplate.merge_pod(pod, template)
    merged["spec"]["containers"][0]["env"].append({"name": "B"})
    assert (pod, template) == before


def test_revision_deployment_carries_the_template_and_it_is_a_new_revision():
    template = {
        "metadata": {"labels": {"team": "risk"}},
        "spec": {
            "serviceAccountName": "fraud-reader",
            "containers": [{"name": "predictor", "envFrom": [{"secretRef": {"name": "extra"}}]}],
        },
    }
    plain = md("1.0.0")
    custom = md("1.0.0", predictor={"image": IMAGE, "replicas": 2, "template": template})
    assert custom.revision != plain.revision
    # an empty template is the same revision as none (an upgrade does not roll out)
    assert md("1.0.0", predictor={"image": IMAGE, "template": {}}).revision == plain.revision
    pod = manifests.revision_deployment(custom, 2, "stable")["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "risk"
    assert pod["metadata"]["labels"][manifests.REVISION_LABEL] == custom.revision
    assert pod["spec"]["serviceAccountName"] == "fraud-reader"
    (c,) = pod["spec"]["containers"]
    assert c["envFrom"] == [{"secretRef": {"name": "extra"}}]


# ----- model stores -------------------------------------------------------------


def test_pvc_uri_mounts_the_claim_read_only_and_passes_the_mounted_path():
    m = md("1.0.0", model={"name": "fraud", "version": "1.0.0", "uri": "pvc://bundles/fraud/1/"})
    assert stores.claim_of(m.model.uri) == ("bundles", "fraud/1/")
    pod = manifests.revision_deployment(m, 1, "stable")["spec"]["template"]
    assert {
        "name": "modeldeploy-store",
        "persistentVolumeClaim": {"claimName": "bundles", "readOnly": True},
    } in pod["spec"]["volumes"]
    (c,) = pod["spec"]["containers"]
    assert {"name": "modeldeploy-store", "mountPath": stores.STORE_MOUNT, "readOnly": True} in c[
        "volumeMounts"
    ]
    assert c["args"][c["args"].index("--bundle") + 1] == f"{stores.STORE_MOUNT}/fraud/1/"
    root = md("1.0.0", model={"name": "fraud", "version": "1.0.0", "uri": "pvc://bundles"})
    assert stores.bundle_location(root.model) == stores.STORE_MOUNT
    with pytest.raises(ValueError, match="needs a claim name"):
        stores.claim_of("pvc:///fraud")


def test_credentials_secret_becomes_the_predictors_environment():
    model = {
        "name": "fraud",
        "version": "1.0.0",
        "uri": "s3://models/fraud/1/",
        "credentials": {"secretRef": {"name": "s3-reader"}},
    }
    m = md("1.0.0", model=model)
    assert m.revision != md("1.0.0", model={**model, "credentials": None}).revision
    template = {
        "spec": {
            "containers": [{"name": "predictor", "envFrom": [{"configMapRef": {"name": "c"}}]}]
        }
    }
    m2 = md("1.0.0", model=model, predictor={"image": IMAGE, "template": template})
    (c,) = manifests.revision_deployment(m2, 1, "stable")["spec"]["template"]["spec"]["containers"]
    assert c["envFrom"] == [{"secretRef": {"name": "s3-reader"}}, {"configMapRef": {"name": "c"}}]
    assert c["args"][c["args"].index("--bundle") + 1] == "s3://models/fraud/1/"
    # No store volume for S3: only the pod's own emptyDirs.
    volumes = manifests.revision_deployment(m, 1, "stable")["spec"]["template"]["spec"]["volumes"]
    assert {v["name"] for v in volumes} == {
        manifests.TMP_VOLUME,
        manifests.BUNDLE_CACHE_VOLUME,
    }


def test_router_template_subset_is_merged_into_the_router_pods():
    template = {
        "metadata": {"annotations": {"cost-center": "42", "prometheus.io/port": "1"}},
        "spec": {
            "nodeSelector": {"pool": "edge"},
            "tolerations": [{"key": "edge", "operator": "Exists"}],
            "containers": [{"name": "router", "resources": {"requests": {"cpu": "200m"}}}],
        },
    }
    m = md(traffic={"provider": "builtin", "router": {"template": template}})
    assert m.revision == md().revision  # the router is not part of a revision
    dep = next(o for o in builtin.objects(m, IMAGE) if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]
    assert pod["metadata"]["annotations"]["cost-center"] == "42"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"  # ours win
    assert pod["spec"]["nodeSelector"] == {"pool": "edge"}
    assert pod["spec"]["tolerations"] == [{"key": "edge", "operator": "Exists"}]
    assert pod["spec"]["serviceAccountName"] == "fraud-router"
    (c,) = pod["spec"]["containers"]
    assert c["name"] == "router" and c["resources"] == {"requests": {"cpu": "200m"}}
    plain = builtin.objects(md(), IMAGE)[3]["spec"]["template"]
    assert "nodeSelector" not in plain["spec"] and "resources" not in plain["spec"]["containers"][0]
