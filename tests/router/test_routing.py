"""Unit tests of the pure routing decisions."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from modeldeploy_router import routing
from modeldeploy_router.routing import CANARY, SHADOW, STABLE, EndpointPool, RoutingTable, Track


def table(**pools: tuple[str, ...]) -> RoutingTable:
    return RoutingTable(
        model="m",
        tracks={name: Track(name=name, pool=EndpointPool(urls)) for name, urls in pools.items()},
    )


@pytest.mark.parametrize("weight", [0, 1, 10, 50, 90, 99, 100])
def test_split_share_within_binomial_bound(weight: int) -> None:
    rand = random.Random(7).random
    n = 20_000
    canary = sum(routing.choose_primary(weight, None, rand) == CANARY for _ in range(n))
    p = weight / 100
    sd = math.sqrt(n * p * (1 - p))
    assert abs(canary - n * p) <= 5 * sd + 1e-9


def test_sticky_key_is_stable_and_monotone_in_weight() -> None:
    keys = [f"user-{i}" for i in range(5000)]
    never = lambda: pytest.fail("a sticky key must not draw randomly")  # noqa: E731
    previous: set[str] = set()
    for weight in (0, 5, 10, 25, 50, 75, 99, 100):
        canary = {k for k in keys if routing.choose_primary(weight, k, never) == CANARY}
        # the same key gives the same answer twice
        assert canary == {k for k in keys if routing.choose_primary(weight, k, never) == CANARY}
        # raising the weight only moves keys stable -> canary
        assert previous <= canary
        # and moves about the right share
        p = weight / 100
        assert abs(len(canary) - p * len(keys)) <= 5 * math.sqrt(len(keys) * p * (1 - p)) + 1e-9
        previous = canary


@given(st.text(min_size=1, max_size=50))
def test_sticky_bucket_in_range(key: str) -> None:
    assert 0 <= routing.sticky_bucket(key) < 100


def test_mirror_share() -> None:
    rand = random.Random(3).random
    assert not any(routing.should_mirror(0, rand) for _ in range(1000))
    assert all(routing.should_mirror(100, rand) for _ in range(1000))
    hits = sum(routing.should_mirror(25, rand) for _ in range(10_000))
    assert abs(hits - 2500) <= 5 * math.sqrt(10_000 * 0.25 * 0.75)


def test_round_robin_and_exclude() -> None:
    pool = EndpointPool(("a", "b", "c"))
    assert [pool.pick() for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]
    assert all(pool.pick(exclude="b") != "b" for _ in range(10))
    assert EndpointPool(("a",)).pick(exclude="a") is None
    assert EndpointPool().pick() is None


def test_resolve_prefers_wanted_track() -> None:
    t = table(stable=("s",), canary=("c",))
    assert routing.resolve(t, CANARY) == routing.Decision(CANARY)
    assert routing.resolve(t, STABLE) == routing.Decision(STABLE)


def test_resolve_falls_back_to_stable_when_track_empty_or_absent() -> None:
    t = table(stable=("s",), canary=())
    assert routing.resolve(t, CANARY) == routing.Decision(STABLE, fell_back_from=CANARY)
    assert routing.resolve(t, SHADOW) == routing.Decision(STABLE, fell_back_from=SHADOW)


def test_resolve_without_stable_endpoints_gives_no_track_unless_canary_serves() -> None:
    t = table(stable=(), canary=("c",))  # weight 0: the canary serves nobody
    assert routing.resolve(t, STABLE) == routing.Decision(None, fell_back_from=STABLE)
    assert routing.resolve(t, CANARY).track == CANARY
    assert not t.ready
    assert table(stable=("s",)).ready


def test_stable_without_endpoints_falls_back_to_a_canary_serving_users() -> None:
    t = replace(table(stable=(), canary=("c",)), canary_weight=5)
    assert routing.resolve(t, STABLE) == routing.Decision(CANARY, fell_back_from=STABLE)
    assert t.ready
    assert routing.other_track(t, STABLE) == CANARY
    assert routing.other_track(t, CANARY) is None  # stable has no endpoint
    assert routing.other_track(t, SHADOW) is None  # a shadow never serves users
    full = replace(table(stable=("s",), canary=("c",)), canary_weight=5)
    assert routing.other_track(full, CANARY) == STABLE
    assert routing.other_track(replace(full, canary_weight=0), STABLE) is None


@pytest.mark.parametrize("bad", ["x", None, -1, 101, "200"])
def test_parse_weight_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        routing.parse_weight(bad, "w")


def test_parse_weight_accepts() -> None:
    assert routing.parse_weight("12.5", "w") == 12.5
    assert routing.parse_weight(100, "w") == 100
