"""Kopf handlers: the only module with `@kopf.on.*` decorators.

Each handler is a few lines handing the body to `Reconciler.reconcile`. The
handlers are registered in `build_registry` because the timer interval comes
from the operator's flags. Startup sets Kopf's storage, finalizer, posting
and watch timeouts explicitly, so an upgrade of Kopf cannot change them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from modeldeploy_operator import health, kube, reconcile, spec, transient
from modeldeploy_operator import metrics as opmetrics
from modeldeploy_operator.analysis.prometheus import Prometheus
from modeldeploy_operator.config import Config
from modeldeploy_operator.gates.loadgen import LoadGenerator
from modeldeploy_operator.traffic.gatewayapi import RouteError

RESOURCE = (spec.GROUP, spec.VERSION, spec.PLURAL)
PREFIX = "modeldeploy.io"


async def _run(memo: kopf.Memo, body: kopf.Body, *, full: bool, retry: float) -> None:
    reconciler: reconcile.Reconciler = memo["reconciler"]
    try:
        await reconciler.reconcile(dict(body), full=full)
    except RouteError as exc:
        opmetrics.RECONCILE_ERRORS.labels(kind="route-error").inc()
        kopf.warn(body, reason=exc.reason, message=str(exc))
        raise kopf.TemporaryError(str(exc), delay=10) from exc
    except Exception as exc:
        if isinstance(exc, ApiException) or transient.is_transient(exc):
            opmetrics.RECONCILE_ERRORS.labels(kind=transient.kind(exc)).inc()
        if not transient.is_transient(exc):
            raise  # a bug or a refusal: Kopf's back-off, so that it cannot spin
        # Not Kopf's 60 s back-off: a rollout must move again as soon as the API is back.
        raise kopf.TemporaryError(
            f"Kubernetes API unavailable ({type(exc).__name__}); retrying in {retry:g}s",
            delay=retry,
        ) from exc


def build_registry(config: Config) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.persistence.finalizer = f"{PREFIX}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=PREFIX, key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING  # explicit Events only, not every log line
        settings.watching.server_timeout = config.watch_timeout
        settings.watching.client_timeout = config.watch_timeout + 30
        settings.watching.connect_timeout = 30
        # A deleted object keeps Kopf's finalizer until the tick timer stops;
        # Kopf re-checks a timer still mid-run only every 60 s by default,
        # which users would see as `kubectl delete md` hanging for a minute.
        settings.background.cancellation_polling = 1.0
        # A watch that went silent (a dead flow) is noticed and reopened after this.
        settings.watching.inactivity_timeout = 70
        # Kopf's own calls (progress annotations, Events, peering): bounded like
        # ours (kube.REQUEST_TIMEOUT), not aiohttp's 5 minutes.
        settings.networking.request_timeout = kube.REQUEST_TIMEOUT[1]
        settings.networking.connect_timeout = kube.REQUEST_TIMEOUT[0]
        settings.peering.name = config.peering or "modeldeploy"
        settings.peering.priority = config.priority
        settings.peering.standalone = config.peering is None
        settings.peering.mandatory = config.peering is not None
        # API calls run in threads (kube.py); the default pool (cores + 4) is too
        # small for hundreds of objects reconciling at once.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=config.api_workers)
        )
        api_client = kube.new_api_client(config.kubeconfig, pool_size=config.api_workers)
        provider = Prometheus(config.prometheus_url, timeout=config.prometheus_timeout)
        memo["provider"] = provider
        client = kube.Kube(api_client)
        memo["loadgen"] = LoadGenerator(client)
        memo["reconciler"] = reconcile.Reconciler(
            kube=client,
            provider=provider,
            router_image=config.router_image,
        )
        opmetrics.export_info()
        if config.metrics_port:
            memo["health"] = await health.start(
                config.metrics_host, config.metrics_port, memo["loadgen"]
            )

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A custom registry has no default login handlers. An explicit kubeconfig
        # (cli.py exports it as KUBECONFIG) wins; else in-cluster, else ~/.kube/config.
        if config.kubeconfig:
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_via_client(**kwargs)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        if "provider" in memo:
            await memo["provider"].aclose()
        if "reconciler" in memo:
            await memo["reconciler"].gates.aclose()
        if "health" in memo:
            await memo["health"].cleanup()
        if "loadgen" in memo:
            await memo["loadgen"].aclose()

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, registry=registry)
    async def changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await _run(memo, body, full=True, retry=1.0)

    @kopf.timer(
        *RESOURCE,
        interval=config.tick,
        when=lambda body, **_: reconcile.needs_ticks(body),
        registry=registry,
    )
    async def tick(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await _run(memo, body, full=False, retry=config.tick)

    # Deletion is seen on the watch stream, not by a delete handler: a settled
    # object has no finalizer, so a handler would miss it, and the per-object
    # state behind /metrics would outlive it. Children go by ownerReferences.
    @kopf.on.event(*RESOURCE, registry=registry)
    async def deleted(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        if event["type"] == "DELETED":
            memo["reconciler"].forget(body["metadata"]["uid"])

    return registry
