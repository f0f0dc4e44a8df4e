"""Pure routing decisions: which track serves a request, and whether to mirror it.

Kept free of I/O so the split, the sticky assignment and the fallback rules can
be unit-tested exactly. The proxy holds one immutable `RoutingTable` at a time
and swaps it whole when the Kubernetes object or the EndpointSlices change, so
a request in flight keeps the decision it was made with.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

STABLE = "stable"
CANARY = "canary"
SHADOW = "shadow"
TRACKS = (STABLE, CANARY, SHADOW)
PRIMARY_TRACKS = (STABLE, CANARY)


class EndpointPool:
    """Round-robin over one track's ready endpoints (base URLs).

    The counter is the only mutable state; a new pool is built whenever the
    endpoints change, which resets the rotation (harmless).
    """

    __slots__ = ("_counter", "urls")

    def __init__(self, urls: tuple[str, ...] = ()) -> None:
        self.urls = urls
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self.urls)

    def pick(self, exclude: str | None = None) -> str | None:
        """Next endpoint in rotation, skipping `exclude` (the one that just failed)."""
        n = len(self.urls)
        if n == 0:
            return None
        start = next(self._counter)
        for i in range(n):
            url = self.urls[(start + i) % n]
            if url != exclude:
                return url
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EndpointPool) and other.urls == self.urls

    def __repr__(self) -> str:
        return f"EndpointPool({self.urls!r})"


@dataclass(frozen=True)
class Track:
    """One track as the operator describes it, plus its ready endpoints."""

    name: str
    version: str = ""
    revision: str = ""
    service: str = ""
    pool: EndpointPool = field(default_factory=EndpointPool)


@dataclass(frozen=True)
class RoutingTable:
    """Everything a request needs to be routed; replaced whole on every change."""

    model: str = ""
    canary_weight: float = 0.0
    mirror_percent: float = 0.0
    tracks: Mapping[str, Track] = field(default_factory=dict)

    def has_endpoints(self, name: str) -> bool:
        t = self.tracks.get(name)
        return t is not None and len(t.pool) > 0

    @property
    def ready(self) -> bool:
        """The router can serve: stable has a ready endpoint, or the track its
        requests fall back to has (`resolve`)."""
        return resolve(self, STABLE).track is not None


def sticky_bucket(key: str) -> float:
    """Map a key to a fixed point in [0, 100).

    Routing a key to canary when its bucket is below the weight makes the
    assignment monotone: raising the weight only moves keys stable -> canary.
    """
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") * 100.0 / 2**64


def choose_primary(weight: float, key: str | None, rand: Callable[[], float]) -> str:
    """Pick stable or canary for one request; `rand` returns a float in [0, 1)."""
    if weight <= 0:
        return STABLE
    if weight >= 100:
        return CANARY
    point = sticky_bucket(key) if key else rand() * 100.0
    return CANARY if point < weight else STABLE


def should_mirror(percent: float, rand: Callable[[], float]) -> bool:
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    return rand() * 100.0 < percent


@dataclass(frozen=True)
class Decision:
    """Outcome of `resolve`: the track to use, and the track first chosen when
    it had to fall back (for the fallback counter and the log)."""

    track: str | None
    fell_back_from: str | None = None


def serves_users(table: RoutingTable, name: str) -> bool:
    """Stable always does; canary while its weight is above 0; shadow never."""
    return name == STABLE or (name == CANARY and table.canary_weight > 0)


def other_track(table: RoutingTable, name: str) -> str | None:
    """The other primary track, when it has ready endpoints and already serves
    users: where a request goes when `name` has no endpoint for it."""
    other = {STABLE: CANARY, CANARY: STABLE}.get(name)
    if other is None or not table.has_endpoints(other) or not serves_users(table, other):
        return None
    return other


def resolve(table: RoutingTable, wanted: str) -> Decision:
    """Apply the fallback rule: a track without ready endpoints sends its
    request to the other primary track when that one serves users (canary only
    with a weight above 0); a shadow pick (override) falls back to stable.
    No such track: no track (the proxy answers 503)."""
    if table.has_endpoints(wanted):
        return Decision(wanted)
    other = other_track(table, wanted) if wanted != SHADOW else None
    if wanted == SHADOW and table.has_endpoints(STABLE):
        other = STABLE
    return Decision(other, fell_back_from=wanted)


def parse_weight(value: object, what: str) -> float:
    """A 0-100 percentage from the status or the command line, or ValueError."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number between 0 and 100, got {value!r}") from None
    if not 0 <= number <= 100:
        raise ValueError(f"{what} must be between 0 and 100, got {value!r}")
    return number
