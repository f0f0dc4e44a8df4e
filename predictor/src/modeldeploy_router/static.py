"""Static mode: the routing table from command-line flags (local runs, tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from modeldeploy_router import routing
from modeldeploy_router.proxy import TableSource


def parse_backends(values: Iterable[str]) -> dict[str, list[str]]:
    """`stable=URL` pairs (repeatable: several URLs make a pool) -> URLs by track."""
    out: dict[str, list[str]] = {}
    for value in values:
        track, sep, url = value.partition("=")
        track = track.strip().lower()
        if not sep or track not in routing.PRIMARY_TRACKS:
            raise ValueError(f"--backend expects stable=URL or canary=URL, got {value!r}")
        out.setdefault(track, []).append(check_url(url, f"--backend {track}"))
    if routing.STABLE not in out:
        raise ValueError("a stable backend is required: --backend stable=URL")
    return out


def check_url(url: str, what: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise ValueError(f"{what}: expected an http:// URL, got {url!r}")
    return url


def parse_versions(values: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        track, sep, version = value.partition("=")
        track = track.strip().lower()
        if not sep or track not in routing.TRACKS:
            raise ValueError(f"--track-version expects TRACK=VERSION, got {value!r}")
        out[track] = version.strip()
    return out


def build_table(
    model: str,
    backends: Mapping[str, list[str]],
    shadow: list[str],
    weight: float,
    mirror_percent: float,
    versions: Mapping[str, str],
) -> routing.RoutingTable:
    urls = dict(backends)
    if shadow:
        urls[routing.SHADOW] = shadow
    tracks = {
        name: routing.Track(
            name=name,
            version=versions.get(name, ""),
            pool=routing.EndpointPool(tuple(dict.fromkeys(lst))),
        )
        for name, lst in urls.items()
    }
    return routing.RoutingTable(
        model=model, canary_weight=weight, mirror_percent=mirror_percent, tracks=tracks
    )


class StaticSource(TableSource):
    def __init__(self, table: routing.RoutingTable) -> None:
        self.table = table

    async def start(self, apply: Callable[[routing.RoutingTable], None]) -> None:
        apply(self.table)
