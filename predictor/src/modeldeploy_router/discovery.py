"""Pure translation of Kubernetes objects into a `RoutingTable`.

The watch code (`kube.py`) keeps the latest ModelDeployment and EndpointSlices
as plain dicts (the API's camelCase JSON); this module turns them into the
table the proxy uses. Separate from the I/O so the contract with the operator
(`status.traffic`, see docs/contracts.md) is tested without a cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from modeldeploy_router import routing

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _slice_port(slice_: Mapping) -> int | None:
    """The port named `http`, else the first port of the slice."""
    ports = slice_.get("ports") or []
    for port in ports:
        if port.get("name") == "http" and port.get("port"):
            return int(port["port"])
    for port in ports:
        if port.get("port"):
            return int(port["port"])
    return None


def _url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def endpoints_from_slices(slices: Iterable[Mapping]) -> tuple[str, ...]:
    """Base URLs of the ready endpoints in a Service's EndpointSlices.

    `conditions.ready` unset counts as ready (the API's documented meaning);
    terminating endpoints report ready=false and drop out here.
    """
    urls: set[str] = set()
    for slice_ in slices:
        port = _slice_port(slice_)
        if port is None:
            continue
        for endpoint in slice_.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                urls.add(_url(address, port))
    return tuple(sorted(urls))


def slice_service(slice_: Mapping) -> str | None:
    labels = (slice_.get("metadata") or {}).get("labels") or {}
    return labels.get(SERVICE_NAME_LABEL)


def model_name(md: Mapping | None, fallback: str) -> str:
    if md is None:
        return fallback
    model = (md.get("spec") or {}).get("model") or {}
    return str(model.get("name") or fallback)


def table_from_objects(
    md: Mapping | None,
    slices_by_service: Mapping[str, Iterable[Mapping]],
    model_fallback: str,
    previous: routing.RoutingTable | None = None,
) -> routing.RoutingTable:
    """Build the routing table from the ModelDeployment and the slices.

    An absent object or `status.traffic` means no tracks (the router answers
    503 until the operator has written routing). A bad weight keeps the
    previous value and is logged, so one bad write cannot reroute traffic.
    """
    model = model_name(md, model_fallback)
    traffic = ((md or {}).get("status") or {}).get("traffic") or {}
    prev = previous or routing.RoutingTable()
    try:
        weight = routing.parse_weight(traffic.get("canaryWeight", 0), "status.traffic.canaryWeight")
    except ValueError as exc:
        log.error("%s; keeping %s", exc, prev.canary_weight)
        weight = prev.canary_weight
    try:
        mirror = routing.parse_weight(
            traffic.get("mirrorPercent", 0), "status.traffic.mirrorPercent"
        )
    except ValueError as exc:
        log.error("%s; keeping %s", exc, prev.mirror_percent)
        mirror = prev.mirror_percent
    tracks: dict[str, routing.Track] = {}
    for name, spec in (traffic.get("tracks") or {}).items():
        if name not in routing.TRACKS or not isinstance(spec, Mapping):
            log.warning("ignoring unknown track %r in status.traffic.tracks", name)
            continue
        service = str(spec.get("service") or "")
        urls = endpoints_from_slices(slices_by_service.get(service, ()))
        old = prev.tracks.get(name)
        # Keep the old pool object when nothing changed, so the rotation carries on.
        pool = old.pool if old is not None and old.pool.urls == urls else routing.EndpointPool(urls)
        tracks[name] = routing.Track(
            name=name,
            version=str(spec.get("version") or ""),
            revision=str(spec.get("revision") or ""),
            service=service,
            pool=pool,
        )
    return routing.RoutingTable(
        model=model, canary_weight=weight, mirror_percent=mirror, tracks=tracks
    )
