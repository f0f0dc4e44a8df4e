"""Kubernetes mode: routing from the ModelDeployment and the track EndpointSlices.

The one module that talks to the API server. Two watches run side by side,
each a list-then-watch loop that resumes from the last resourceVersion, ends
and restarts every WATCH_SECONDS (so a silently dead connection is noticed),
relists at once on 410 Gone and backs off on other errors. Every request
has a deadline (`LIST_TIMEOUT`, `WATCH_TIMEOUT`): a flow that a partition
left open and silent (a lost NAT or conntrack entry) would otherwise hold the
loop for ever, and the router would never see another weight. Every event
rebuilds the routing table from the cached objects (`discovery.py`, pure) and
swaps it into the proxy, which takes effect for the next request: in-flight
requests finish on the endpoint they already have.

`resume_from` is a test seam: {"md" or "slices": resourceVersion}; the first
watch of that loop resumes from the given version instead of the list's, so a
test can give the real API server a version older than its watch cache holds
and see it answer 410 Gone (tests/router/test_cluster.py). `gone` counts those
answers per watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from modeldeploy_router import discovery, routing
from modeldeploy_router.proxy import TableSource

log = logging.getLogger(__name__)

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"
WATCH_SECONDS = 55
FIRST_SYNC_SECONDS = 10.0
MAX_BACKOFF = 5.0
# kubernetes_asyncio passes no timeout to aiohttp unless asked: without these a
# list or watch on a silently dead connection never returns.
LIST_TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=5)
WATCH_TIMEOUT = aiohttp.ClientTimeout(total=WATCH_SECONDS + 10, sock_connect=5)


async def load_credentials() -> client.ApiClient:
    """In-cluster ServiceAccount when running in a pod, else KUBECONFIG."""
    try:
        config.load_incluster_config()
        log.info("using the in-cluster service account")
    except ConfigException:
        # The library reads KUBECONFIG once, at import; read it now.
        await config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
        log.info("using the kubeconfig")
    return client.ApiClient()


class KubeSource(TableSource):
    def __init__(
        self,
        namespace: str,
        name: str,
        model_fallback: str,
        resume_from: Mapping[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.model_fallback = model_fallback or name
        self.md: dict | None = None
        self.slices: dict[str, dict] = {}  # slice name -> slice
        self.table: routing.RoutingTable | None = None
        self._apply: Callable[[routing.RoutingTable], None] | None = None
        self._api: client.ApiClient | None = None
        self._tasks: list[asyncio.Task] = []
        self._synced = {"md": asyncio.Event(), "slices": asyncio.Event()}
        self._resume_from = dict(resume_from or {})
        self.gone = dict.fromkeys(self._synced, 0)  # 410 answers per watch

    async def start(self, apply: Callable[[routing.RoutingTable], None]) -> None:
        self._apply = apply
        self._api = await load_credentials()
        custom = client.CustomObjectsApi(self._api)
        discovery_api = client.DiscoveryV1Api(self._api)

        def list_md(**kw: Any) -> Awaitable:
            return custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                field_selector=f"metadata.name={self.name}",
                **kw,
            )

        def list_slices(**kw: Any) -> Awaitable:
            return discovery_api.list_namespaced_endpoint_slice(
                self.namespace, label_selector=discovery.SERVICE_NAME_LABEL, **kw
            )

        self._tasks = [
            asyncio.create_task(self._loop("md", list_md, self._set_md), name="watch-md"),
            asyncio.create_task(
                self._loop("slices", list_slices, self._set_slice), name="watch-slices"
            ),
        ]
        # Start serving with a complete picture when the API answers quickly;
        # /readyz stays false until stable has endpoints either way.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_SYNC_SECONDS):
                for event in self._synced.values():
                    await event.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._api is not None:
            await self._api.close()

    # -- cache updates ------------------------------------------------------
    def _set_md(self, kind: str, obj: dict | None) -> None:
        self.md = None if kind == "DELETED" else obj

    def _set_slice(self, kind: str, obj: dict | None) -> None:
        if obj is None:
            return
        name = (obj.get("metadata") or {}).get("name", "")
        if kind == "DELETED":
            self.slices.pop(name, None)
        else:
            self.slices[name] = obj

    def _rebuild(self) -> None:
        by_service: dict[str, list[dict]] = {}
        for slice_ in self.slices.values():
            service = discovery.slice_service(slice_)
            if service:
                by_service.setdefault(service, []).append(slice_)
        self.table = discovery.table_from_objects(
            self.md, by_service, self.model_fallback, previous=self.table
        )
        if self._apply is not None:
            self._apply(self.table)

    # -- list + watch ---------------------------------------------------------
    async def _loop(
        self,
        what: str,
        list_fn: Callable[..., Awaitable],
        update: Callable[[str, dict | None], None],
    ) -> None:
        backoff = 0.2
        while True:
            try:
                listed = await list_fn(_request_timeout=LIST_TIMEOUT)
                doc = self._api.sanitize_for_serialization(listed)  # type: ignore[union-attr]
                rv = (doc.get("metadata") or {}).get("resourceVersion")
                self._replace(what, doc.get("items") or [], update)
                self._synced[what].set()
                backoff = 0.2
                rv = self._resume_from.pop(what, None) or rv
                while True:
                    rv = await self._watch_once(what, list_fn, rv, update)
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status == 410:
                    self.gone[what] += 1
                    log.info("%s watch: resourceVersion expired, relisting", what)
                    continue
                log.warning("%s watch: API error %s %s; retrying", what, exc.status, exc.reason)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                log.warning("%s watch: %r; retrying", what, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _replace(self, what: str, items: list[dict], update) -> None:
        if what == "md":
            update("ADDED" if items else "DELETED", items[0] if items else None)
        else:
            self.slices = {}
            for item in items:
                update("ADDED", item)
        self._rebuild()

    async def _watch_once(self, what, list_fn, rv, update) -> str | None:
        """One watch request; returns the resourceVersion to resume from."""
        async with watch.Watch() as w:
            stream = w.stream(
                list_fn,
                resource_version=rv,
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
                _request_timeout=WATCH_TIMEOUT,
            )
            async for event in stream:
                if event["type"] != "BOOKMARK":
                    update(event["type"], event["raw_object"])
                    self._rebuild()
            return w.resource_version or rv
