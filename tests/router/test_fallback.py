"""Fallback rules over real HTTP (docs/router.md, Failures): a track without
ready endpoints, or whose endpoint refuses the connection, sends its requests
to the other primary track when that one serves users, counted in
modeldeploy_router_fallback_total{track,to}. The real router in-process
before scripted backends (harness.py)."""

from __future__ import annotations

from modeldeploy_router.routing import sticky_bucket

from tests.router.harness import PREDICT, Backend, Served, echo_script, get, post, serving, table

FALLBACK = "modeldeploy_router_fallback_total"


# a sticky key that picks stable at a canary weight of 10
STABLE_KEY = next(k for k in map(str, range(1000)) if sticky_bucket(k) >= 10)


async def predict(srv: Served, n: int = 4) -> list[str]:
    """The tracks that answered n predictions that pick stable first."""
    tracks = []
    for _ in range(n):
        ans = await srv.exchange(post("/predict", PREDICT, f"X-Modeldeploy-Key: {STABLE_KEY}"))
        assert ans.status == 200, ans
        tracks.append(ans.headers["x-modeldeploy-track"])
    return tracks


def test_canary_without_endpoints_goes_to_stable_and_is_counted(run, caplog) -> None:
    async def main() -> None:
        async with (
            Backend(echo_script) as stable,
            serving(table(stable=stable.url, canary=(), weight=100)) as srv,
        ):
            assert await predict(srv) == ["stable"] * 4
            assert srv.metric(FALLBACK, track="canary", to="stable") == 4
            assert srv.metric("modeldeploy_router_endpoints", track="canary") == 0
            assert (await srv.exchange(get("/readyz"))).status == 200

    run(main())
    assert any("canary has no ready endpoints" in r.getMessage() for r in caplog.records)


def test_stable_without_endpoints_goes_to_a_canary_that_serves_users(run) -> None:
    async def main() -> None:
        async with (
            Backend(echo_script) as canary,
            serving(table(stable=(), canary=canary.url, weight=10)) as srv,
        ):
            assert await predict(srv) == ["canary"] * 4
            assert srv.metric(FALLBACK, track="stable", to="canary") == 4
            assert (await srv.exchange(get("/readyz"))).status == 200

    run(main())


def test_no_track_serving_users_is_503_json(run) -> None:
    async def main() -> None:
        async with Backend(echo_script) as canary:
            for routes in (
                table(stable=(), canary=canary.url, weight=0),  # canary serves nobody
                table(),
            ):
                async with serving(routes) as srv:
                    ans = await srv.exchange(post("/predict", b"{}"))
                    assert ans.status == 503
                    assert "stable" in ans.json()["error"]
                    assert (await srv.exchange(get("/readyz"))).status == 503
                    assert (await srv.exchange(get("/healthz"))).status == 200
            assert canary.requests == []

    run(main())


def test_refused_connect_is_retried_on_the_other_track(run, port: int) -> None:
    dead = f"http://127.0.0.1:{port}"

    async def main() -> None:
        async with Backend(echo_script) as alive:
            async with serving(table(stable=dead, canary=alive.url, weight=10)) as srv:
                assert await predict(srv, 3) == ["canary"] * 3
                assert srv.metric(FALLBACK, track="stable", to="canary") == 3
            async with serving(table(stable=alive.url, canary=dead, weight=100)) as srv:
                assert await predict(srv, 3) == ["stable"] * 3
                assert srv.metric(FALLBACK, track="canary", to="stable") == 3
            async with serving(table(stable=dead, canary=alive.url, weight=0)) as srv:
                ans = await srv.exchange(post("/predict", PREDICT))  # canary serves nobody
                assert ans.status == 502
                assert ans.json()["track"] == "stable"

    run(main())
