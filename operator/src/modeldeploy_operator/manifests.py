"""Pure builders of the revision objects a ModelDeployment owns (names per docs/contracts.md).

The traffic providers build their own objects (traffic/builtin.py: the router;
traffic/gatewayapi.py: the HTTPRoute rules) from the helpers here.

Each function returns a complete manifest for server-side apply: the same
input always gives the same object, so applying it again is a no-op and a
restarted operator converges on the same children.
"""

from __future__ import annotations

from typing import Any

from modeldeploy_operator import podtemplate, stores
from modeldeploy_operator.spec import GROUP, KIND, VERSION, ModelDeployment

PORT = 8080
MANAGED_BY = {"app.kubernetes.io/managed-by": "modeldeploy"}
NAME_LABEL = "modeldeploy.io/name"
REVISION_LABEL = "modeldeploy.io/revision"
COMPONENT_LABEL = "app.kubernetes.io/component"
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(PORT),
    "prometheus.io/path": "/metrics",
}
# Servers listen on every interface of their pod: the kubelet probes the pod
# IP, Services reach it, and `kubectl port-forward` connects to localhost.
LISTEN_ALL = "0.0.0.0"
# How long a predictor may take to fetch and load its bundle before the
# kubelet restarts it (the server listens only once the model is loaded).
BUNDLE_LOAD_SECONDS = 300
# A deleted predictor pod (scale-down, superseded revision) keeps serving this
# long before the server gets SIGTERM: the pod's endpoint must first leave the
# routers' tables and every node's Service rules, or requests sent in that gap
# are refused or cut. The kubelet's own `sleep` action: no shell in the image.
PREDICTOR_DRAIN_SECONDS = 5
# Then the server's own graceful stop: predictor --graceful-timeout's default
# (tests/operator/test_spec_defaults.py holds the two equal).
PREDICTOR_GRACEFUL_SECONDS = 30
# Where a predictor keeps downloaded bundles (an emptyDir: the root
# filesystem is read-only).
BUNDLE_CACHE = "/var/cache/modeldeploy"
# Restricted Pod Security Standard, for every container the operator creates;
# the images run as a numeric non-root user (65532).
CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


# emptyDirs of every pod; the CRD reserves the `modeldeploy-` prefix for our volumes.
TMP_VOLUME = "modeldeploy-tmp"
BUNDLE_CACHE_VOLUME = "modeldeploy-bundle-cache"


def scratch_volume(name: str, size: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {"sizeLimit": size}}


def labels(md: ModelDeployment, **extra: str) -> dict[str, str]:
    return {**MANAGED_BY, NAME_LABEL: md.name, **extra}


def owner_reference(md: ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": md.name,
        "uid": md.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def meta(md: ModelDeployment, name: str, lbls: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": md.namespace,
        "labels": lbls,
        "ownerReferences": [owner_reference(md)],
    }


def service_name(md: ModelDeployment, track: str) -> str:
    return f"{md.name}-{track}"


def revision_deployment(md: ModelDeployment, replicas: int | None, track: str) -> dict[str, Any]:
    """The Deployment of the desired revision (model + predictor spec).

    `track` is the role the revision starts in; it is exported as a metric
    label only. Analysis selects series by revision, so the label need not
    (and does not, to avoid restarting pods) change on promotion. `replicas`
    None leaves the field out: an HPA owns it (autoscaling.py).
    """
    revision = md.revision
    pod_labels = labels(md, **{REVISION_LABEL: revision, COMPONENT_LABEL: "predictor"})
    p = md.predictor
    ours = [
        {"name": "MODELDEPLOY_MODEL_NAME", "value": md.model.name},
        {"name": "MODELDEPLOY_MODEL_VERSION", "value": md.model.version},
        {"name": "MODELDEPLOY_TRACK", "value": track},
        {"name": "MODELDEPLOY_REVISION", "value": revision},
        {"name": "MODELDEPLOY_MAX_BATCH_SIZE", "value": str(p.max_batch_size)},
        {"name": "MODELDEPLOY_MAX_WAIT_MS", "value": str(p.max_wait_ms)},
        # The predictor refuses a bundle whose model.json does not match.
        *([{"name": "MODELDEPLOY_DIGEST", "value": md.model.digest}] if md.model.digest else []),
        {"name": "MODELDEPLOY_CACHE_DIR", "value": BUNDLE_CACHE},
    ]
    # The user's predictor.env, without the names we set (the model identity,
    # batching and cache stay the operator's, as with predictor.template).
    env = podtemplate.merge_env(ours, ({"name": k, "value": v} for k, v in p.env))
    container: dict[str, Any] = {
        "name": "predictor",
        "image": p.image,
        "args": [
            "serve",
            "--bundle",
            stores.bundle_location(md.model),
            "--port",
            str(PORT),
            "--host",
            LISTEN_ALL,
        ],
        "env": env,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        # A failed start (e.g. a store error) leaves its last log lines in the pod
        # status, where podhealth finds them for the rollback message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": PORT},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
        # Liveness starts once the startup probe passed, so a slow bundle
        # download is not mistaken for a hung server.
        "startupProbe": {
            "httpGet": {"path": "/v2/health/live", "port": PORT},
            "periodSeconds": 2,
            "failureThreshold": BUNDLE_LOAD_SECONDS // 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": PORT},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": PREDICTOR_DRAIN_SECONDS}}},
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": [
            {"name": BUNDLE_CACHE_VOLUME, "mountPath": BUNDLE_CACHE},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},
        ],
    }
    if p.resources:
        container["resources"] = p.resources
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(md, revision, pod_labels),
        "spec": {
            **({} if replicas is None else {"replicas": replicas}),
            "revisionHistoryLimit": 1,
            "selector": {"matchLabels": {REVISION_LABEL: revision}},
            "template": _with_user_settings(
                md,
                {
                    "metadata": {"labels": pod_labels, "annotations": dict(SCRAPE_ANNOTATIONS)},
                    "spec": {
                        "securityContext": dict(POD_SECURITY),
                        "terminationGracePeriodSeconds": PREDICTOR_DRAIN_SECONDS
                        + PREDICTOR_GRACEFUL_SECONDS
                        + 5,
                        "containers": [container],
                        "volumes": [
                            scratch_volume(BUNDLE_CACHE_VOLUME, "2Gi"),
                            scratch_volume(TMP_VOLUME, "256Mi"),
                        ],
                    },
                },
            ),
        },
    }


def _with_user_settings(md: ModelDeployment, pod: dict[str, Any]) -> dict[str, Any]:
    """The model store's volume / credentials, then the user's pod template, merged in."""
    pod = podtemplate.merge_pod(pod, stores.store_template(md.model))
    return podtemplate.merge_pod(pod, md.predictor.template)


def track_service(md: ModelDeployment, track: str, revision: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(
            md, service_name(md, track), labels(md, **{"modeldeploy.io/track": track})
        ),
        "spec": {
            "selector": {REVISION_LABEL: revision},
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
        },
    }
