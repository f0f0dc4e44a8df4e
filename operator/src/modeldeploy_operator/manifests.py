"""Pure builders of the objects a ModelDeployment owns (names per docs/contracts.md).

Each function returns a complete manifest for server-side apply: the same
input always gives the same object, so applying it again is a no-op and a
restarted operator converges on the same children.
"""

from __future__ import annotations

from typing import Any

from modeldeploy_operator import podtemplate, stores
from modeldeploy_operator.spec import GROUP, KIND, PLURAL, VERSION, ModelDeployment

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
# Seconds a terminating router pod keeps accepting connections (its endpoint
# takes about that long to leave every node's Service rules).
ROUTER_SHUTDOWN_DELAY = 2
# Servers listen on every interface of their pod: the kubelet probes the pod
# IP, Services reach it, and `kubectl port-forward` connects to localhost.
LISTEN_ALL = "0.0.0.0"
# How long a predictor may take to fetch and load its bundle before the
# kubelet restarts it (the server listens only once the model is loaded).
BUNDLE_LOAD_SECONDS = 300
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


def _scratch_volume(name: str, size: str) -> dict[str, Any]:
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


def _meta(md: ModelDeployment, name: str, lbls: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": md.namespace,
        "labels": lbls,
        "ownerReferences": [owner_reference(md)],
    }


def service_name(md: ModelDeployment, track: str) -> str:
    return f"{md.name}-{track}"


def router_name(md: ModelDeployment) -> str:
    return f"{md.name}-router"


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
    env = [
        {"name": "MODELDEPLOY_MODEL_NAME", "value": md.model.name},
        {"name": "MODELDEPLOY_MODEL_VERSION", "value": md.model.version},
        {"name": "MODELDEPLOY_TRACK", "value": track},
        {"name": "MODELDEPLOY_REVISION", "value": revision},
        {"name": "MODELDEPLOY_MAX_BATCH_SIZE", "value": str(p.max_batch_size)},
        {"name": "MODELDEPLOY_MAX_WAIT_MS", "value": str(p.max_wait_ms)},
        # The predictor refuses a bundle whose model.json does not match.
        *([{"name": "MODELDEPLOY_DIGEST", "value": md.model.digest}] if md.model.digest else []),
        {"name": "MODELDEPLOY_CACHE_DIR", "value": BUNDLE_CACHE},
        *({"name": k, "value": v} for k, v in p.env),
    ]
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
        "metadata": _meta(md, revision, pod_labels),
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
                        "containers": [container],
                        "volumes": [
                            _scratch_volume(BUNDLE_CACHE_VOLUME, "2Gi"),
                            _scratch_volume(TMP_VOLUME, "256Mi"),
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
        "metadata": _meta(
            md, service_name(md, track), labels(md, **{"modeldeploy.io/track": track})
        ),
        "spec": {
            "selector": {REVISION_LABEL: revision},
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
        },
    }


def router_objects(md: ModelDeployment, image: str) -> list[dict[str, Any]]:
    """Builtin traffic provider: router SA + RBAC, Deployment, the user Service and
    a PodDisruptionBudget: every user request crosses the router, so it runs
    `traffic.router.replicas` pods (default 2) spread over nodes, never all
    taken down at once by a drain or by its own rolling update."""
    name = router_name(md)
    lbls = labels(md, **{COMPONENT_LABEL: "router"})
    selector = {NAME_LABEL: md.name, COMPONENT_LABEL: "router"}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(md, name, lbls),
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
        "metadata": _meta(md, name, lbls),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": md.namespace}],
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(md, name, lbls)}
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
            str(PORT),
            "--host",
            LISTEN_ALL,
            # on SIGTERM keep answering while the pod leaves the Service's endpoints
            "--shutdown-delay",
            str(ROUTER_SHUTDOWN_DELAY),
        ],
        "env": [{"name": "MODELDEPLOY_MODEL_NAME", "value": md.model.name}],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        # ready once routing is written and stable has a ready endpoint
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": PORT},
            "periodSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": PORT},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(md, name, lbls),
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
                    "metadata": {"labels": lbls, "annotations": dict(SCRAPE_ANNOTATIONS)},
                    "spec": {
                        "serviceAccountName": name,
                        "securityContext": dict(POD_SECURITY),
                        "containers": [container],
                        "volumes": [_scratch_volume(TMP_VOLUME, "64Mi")],
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
        "metadata": _meta(md, name, lbls),
        # maxUnavailable, not minAvailable: one replica still drains, just not two at once
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(md, md.name, lbls),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT, "protocol": "TCP"}],
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


def httproute_rules(
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
    return {"group": "", "kind": "Service", "name": service_name(md, track), "port": PORT}


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
