"""The builtin router: one router Deployment per ModelDeployment, built here.

The router watches its ModelDeployment's `status.traffic` (docs/contracts.md),
so once the status is written there is nothing more to push: `set_routes` is
a no-op and `reconcile` keeps the router, its RBAC and the user Service.
"""

from __future__ import annotations

from typing import Any

from modeldeploy_operator import manifests, podtemplate
from modeldeploy_operator.kube import Kube
from modeldeploy_operator.spec import GROUP, PLURAL, ModelDeployment

# Seconds a terminating router pod keeps accepting connections (its endpoint
# takes about that long to leave every node's Service rules).
ROUTER_SHUTDOWN_DELAY = 2


class BuiltinRouter:
    def __init__(self, kube: Kube, image: str | None) -> None:
        self.kube = kube
        self.image = image

    async def reconcile(self, md: ModelDeployment) -> None:
        # The router ships in the predictor image unless the operator was told otherwise.
        image = self.image or md.predictor.image
        for obj in objects(md, image):
            await self.kube.apply(obj)

    async def set_routes(self, md: ModelDeployment, traffic: dict[str, Any]) -> None:
        return None  # the router reads status.traffic, written by the caller


def name_of(md: ModelDeployment) -> str:
    """The router's Deployment, ServiceAccount, Role and PDB share this name."""
    return f"{md.name}-router"


def objects(md: ModelDeployment, image: str) -> list[dict[str, Any]]:
    """Builtin traffic provider: router SA + RBAC, Deployment, the user Service and
    a PodDisruptionBudget: every user request crosses the router, so it runs
    `traffic.router.replicas` pods (default 2) spread over nodes, never all
    taken down at once by a drain or by its own rolling update."""
    name = name_of(md)
    lbls = manifests.labels(md, **{manifests.COMPONENT_LABEL: "router"})
    selector = {manifests.NAME_LABEL: md.name, manifests.COMPONENT_LABEL: "router"}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": manifests.meta(md, name, lbls),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": [PLURAL],
                "resourceNames": [md.name],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["get", "list", "watch"],
            },
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": manifests.meta(md, name, lbls),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": md.namespace}],
    }
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": manifests.meta(md, name, lbls),
    }
    container = {
        "name": "router",
        "image": image,
        "command": ["modeldeploy-router"],
        "args": [
            "--kube",
            "--namespace",
            md.namespace,
            "--model-deployment",
            md.name,
            "--port",
            str(manifests.PORT),
            "--host",
            manifests.LISTEN_ALL,
            # on SIGTERM keep answering while the pod leaves the Service's endpoints
            "--shutdown-delay",
            str(ROUTER_SHUTDOWN_DELAY),
        ],
        "env": [{"name": "MODELDEPLOY_MODEL_NAME", "value": md.model.name}],
        "ports": [{"name": "http", "containerPort": manifests.PORT, "protocol": "TCP"}],
        # ready once routing is written and stable has a ready endpoint
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": manifests.PORT},
            "periodSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": manifests.PORT},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "securityContext": dict(manifests.CONTAINER_SECURITY),
        "volumeMounts": [{"name": manifests.TMP_VOLUME, "mountPath": "/tmp"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": manifests.meta(md, name, lbls),
        "spec": {
            "replicas": md.traffic.router_replicas,
            "revisionHistoryLimit": 1,
            "selector": {"matchLabels": selector},
            # a new router pod is Ready before an old one goes
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            # traffic.router.template: annotations, nodeSelector, tolerations, resources
            "template": podtemplate.merge_pod(
                {
                    "metadata": {"labels": lbls, "annotations": dict(manifests.SCRAPE_ANNOTATIONS)},
                    "spec": {
                        "serviceAccountName": name,
                        "securityContext": dict(manifests.POD_SECURITY),
                        "containers": [container],
                        "volumes": [manifests.scratch_volume(manifests.TMP_VOLUME, "64Mi")],
                        "affinity": _spread(selector),
                    },
                },
                md.traffic.router_template,
                container="router",
            ),
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": manifests.meta(md, name, lbls),
        # maxUnavailable, not minAvailable: one replica still drains, just not two at once
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": manifests.meta(md, md.name, lbls),
        "spec": {
            "selector": selector,
            "ports": [
                {
                    "name": "http",
                    "port": manifests.PORT,
                    "targetPort": manifests.PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }
    return [account, role, binding, deployment, service, budget]


def _spread(selector: dict[str, str]) -> dict[str, Any]:
    """Prefer one router pod per node (preferred: a one-node cluster still runs all)."""
    term = {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"}
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term}
            ]
        }
    }
