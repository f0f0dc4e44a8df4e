"""The one place that talks to the Kubernetes API server.

Everything above this module works on plain dicts. Calls run the official
client in a worker thread (the operator's loop never blocks). Children are
server-side applied under one field manager; an in-memory hash of the last
manifest applied per object keeps steady reconciles from re-sending the same
object. The ModelDeployment itself is only ever patched on `status`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from modeldeploy_operator.spec import GROUP, PLURAL, VERSION

FIELD_MANAGER = "modeldeploy-operator"
# Re-apply an unchanged manifest after this long anyway, to repair edits or deletions.
_REAPPLY_SECONDS = 300.0
# (connect, read) seconds for every API call. urllib3 waits for ever by default,
# so a pooled connection that went silent (a partition, a flow lost by a NAT)
# held the rollout's tick for good (tests/chaos/test_connections.py::test_b).
REQUEST_TIMEOUT = (10.0, 30.0)


class BoundedApiClient(client.ApiClient):
    """An ApiClient whose requests time out unless the caller chose a timeout."""

    def call_api(self, *args: Any, _request_timeout: Any = None, **kw: Any) -> Any:
        timeout = REQUEST_TIMEOUT if _request_timeout is None else _request_timeout
        return super().call_api(*args, _request_timeout=timeout, **kw)


def new_api_client(kubeconfig: str | None = None, pool_size: int | None = None) -> client.ApiClient:
    """In-cluster credentials when present, else the kubeconfig (or KUBECONFIG)."""
    cfg = client.Configuration()
    try:
        if kubeconfig is not None:
            raise config.ConfigException("explicit kubeconfig")
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    if pool_size:
        cfg.connection_pool_maxsize = pool_size
    return BoundedApiClient(cfg)


def apply_body(obj: dict[str, Any]) -> bytes:
    """An apply patch as JSON (which is YAML) with characters left unescaped."""
    return json.dumps(obj, ensure_ascii=False).encode()


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 patch turning `old` into `new` (None deletes a key)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before or key not in old:
            patch[key] = value
    return patch


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.dynamic = DynamicClient(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.hpas = client.AutoscalingV2Api(api_client)
        self._applied: dict[tuple[str, str, str], tuple[str, float]] = {}

    # -- children -----------------------------------------------------------
    async def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply, skipped when this process applied the same manifest."""
        meta = obj["metadata"]
        key = (obj["kind"], meta["namespace"], meta["name"])
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
        seen = self._applied.get(key)
        if seen and seen[0] == digest and time.monotonic() - seen[1] < _REAPPLY_SECONDS:
            return
        await asyncio.to_thread(self._apply, obj)
        self._applied[key] = (digest, time.monotonic())

    def _apply(self, obj: dict[str, Any]) -> None:
        resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        resource.server_side_apply(
            # Serialized here: the client's json.dumps escapes characters beyond
            # the BMP as surrogate pairs, which the API server's YAML decoder of
            # apply patches refuses (400) - a spec with such a character was
            # accepted, then never applied (tests/chaos/test_fuzz_manifests.py).
            body=apply_body(obj),
            name=obj["metadata"]["name"],
            namespace=obj["metadata"]["namespace"],
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._applied.pop((kind, namespace, name), None)

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        def call() -> dict[str, Any] | None:
            try:
                dep = self.apps.read_namespaced_deployment(name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            return self.api_client.sanitize_for_serialization(dep)

        return await asyncio.to_thread(call)

    async def list_deployments(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        def call() -> list[dict[str, Any]]:
            items = self.apps.list_namespaced_deployment(namespace, label_selector=selector).items
            return [self.api_client.sanitize_for_serialization(d) for d in items]

        return await asyncio.to_thread(call)

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        await asyncio.to_thread(self.apps.patch_namespaced_deployment, name, namespace, body)

    async def delete_deployment(self, namespace: str, name: str) -> None:
        def call() -> None:
            try:
                self.apps.delete_namespaced_deployment(name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise

        await asyncio.to_thread(call)
        self.forget("Deployment", namespace, name)

    async def list_hpas(self, namespace: str, selector: str) -> list[str]:
        """Names of the HorizontalPodAutoscalers matching `selector`."""

        def call() -> list[str]:
            items = self.hpas.list_namespaced_horizontal_pod_autoscaler(
                namespace, label_selector=selector
            ).items
            return [h.metadata.name for h in items]

        return await asyncio.to_thread(call)

    async def delete_hpa(self, namespace: str, name: str) -> None:
        def call() -> None:
            try:
                self.hpas.delete_namespaced_horizontal_pod_autoscaler(name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise

        await asyncio.to_thread(call)
        self.forget("HorizontalPodAutoscaler", namespace, name)

    async def list_pods(self, namespace: str, revision: str) -> list[dict[str, Any]]:
        """The revision's pods as the API server returns them (camelCase dicts)."""

        def call() -> list[dict[str, Any]]:
            pods = self.core.list_namespaced_pod(
                namespace, label_selector=f"modeldeploy.io/revision={revision}"
            )
            return self.api_client.sanitize_for_serialization(pods).get("items") or []

        return await asyncio.to_thread(call)

    # -- the ModelDeployment --------------------------------------------------
    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> str:
        """Merge-patch `status`; returns the new resourceVersion."""

        def call() -> str:
            obj = self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": patch}
            )
            return str(obj["metadata"]["resourceVersion"])

        return await asyncio.to_thread(call)

    # -- Events ------------------------------------------------------------------
    async def post_event(self, body: dict[str, Any]) -> None:
        """Create a named Event; an existing one of that name is the same Event posted
        before (a restart re-posting its outbox), updated only when it aggregates."""

        def call() -> None:
            meta = body["metadata"]
            try:
                self.core.create_namespaced_event(meta["namespace"], body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                if int(body.get("count") or 1) > 1:
                    update = {k: body[k] for k in ("count", "message", "lastTimestamp")}
                    self.core.patch_namespaced_event(meta["name"], meta["namespace"], update)

        await asyncio.to_thread(call)

    # -- Gateway API ---------------------------------------------------------------
    async def get_object(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        def call() -> dict[str, Any] | None:
            resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
            try:
                return resource.get(name=name, namespace=namespace).to_dict()
            except NotFoundError:
                return None

        return await asyncio.to_thread(call)

    async def merge_patch_object(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        def call() -> None:
            resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
            resource.patch(
                body=patch,
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
            )

        await asyncio.to_thread(call)


def deployment_ready_at_least(dep: dict[str, Any] | None, replicas: int) -> bool:
    """Whether a Deployment whose replicas an HPA owns runs at least `replicas` ready,
    up-to-date pods (the HPA may have asked for more)."""
    if dep is None:
        return False
    status = dep.get("status") or {}
    if int(status.get("observedGeneration", 0)) < int(dep["metadata"].get("generation", 0)):
        return False
    return (
        int(status.get("readyReplicas") or 0) >= replicas
        and int(status.get("updatedReplicas") or 0) >= replicas
    )


def replicas_of(dep: dict[str, Any] | None) -> int:
    return int(((dep or {}).get("spec") or {}).get("replicas") or 0)


def deployment_ready(dep: dict[str, Any] | None, replicas: int) -> bool:
    """Whether a Deployment runs `replicas` ready, up-to-date pods."""
    if dep is None:
        return False
    spec = dep.get("spec") or {}
    status = dep.get("status") or {}
    if int(spec.get("replicas", 0)) != replicas:
        return False
    if int(status.get("observedGeneration", 0)) < int(dep["metadata"].get("generation", 0)):
        return False
    return (
        int(status.get("readyReplicas") or 0) >= replicas
        and int(status.get("updatedReplicas") or 0) >= replicas
    )
