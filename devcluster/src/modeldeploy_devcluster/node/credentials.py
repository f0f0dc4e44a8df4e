"""Service-account credentials for a pod's processes.

The node asks the TokenRequest API for a token bound to the pod (so it dies
with the pod) and writes a per-pod kubeconfig, handed to the processes via
``KUBECONFIG``; the in-cluster files (token, ca.crt, namespace) are written
too, for tools that take a token file. RBAC then applies to the pod exactly as
it would in a real cluster.

A real pod reaches the API server through the `kubernetes` Service, a path
the cluster's network controls. Here the kubeconfig names the address
directly, so the pod annotation `API_SERVER_ANNOTATION` may name another one
(an `https://127.0.0.1:PORT` that forwards to the API server, e.g. a test's
TCP proxy that cuts or blackholes the pod's connections). Only the address
changes: the CA, the token and RBAC stay the same.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from modeldeploy_devcluster import kubeconfig

TOKEN_SECONDS = 24 * 3600
API_SERVER_ANNOTATION = "devcluster.modeldeploy.io/api-server"


def wants_token(pod: dict) -> bool:
    return pod.get("spec", {}).get("automountServiceAccountToken") is not False


def server_for(pod: dict, default: str) -> str:
    """The API server address this pod's kubeconfig names (the annotation, else `default`)."""
    annotations = pod.get("metadata", {}).get("annotations") or {}
    return annotations.get(API_SERVER_ANNOTATION) or default


def request_token(core: client.CoreV1Api, pod: dict) -> str:
    meta = pod["metadata"]
    sa = pod["spec"].get("serviceAccountName") or "default"
    body = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[],
            expiration_seconds=TOKEN_SECONDS,
            bound_object_ref=client.V1BoundObjectReference(
                kind="Pod", api_version="v1", name=meta["name"], uid=meta["uid"]
            ),
        )
    )
    return core.create_namespaced_service_account_token(sa, meta["namespace"], body).status.token


def write(pod_dir: Path, pod: dict, token: str, server: str, ca_cert: Path) -> Path:
    namespace = pod["metadata"]["namespace"]
    sa_dir = pod_dir / "serviceaccount"
    sa_dir.mkdir(parents=True, exist_ok=True)
    (sa_dir / "token").write_text(token)
    (sa_dir / "ca.crt").write_bytes(ca_cert.read_bytes())
    (sa_dir / "namespace").write_text(namespace)
    sa = pod["spec"].get("serviceAccountName") or "default"
    return kubeconfig.write(
        pod_dir / "kubeconfig",
        kubeconfig.build(
            server_for(pod, server),
            ca_cert,
            user=f"system:serviceaccount:{namespace}:{sa}",
            token=token,
            namespace=namespace,
        ),
    )
