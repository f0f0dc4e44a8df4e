"""Fallback rules over real HTTP, with routing tables static mode cannot express
(a track without ready endpoints): the router runs in-process on its own HTTP
server on a free loopback port, the upstream is a real process."""

from __future__ import annotations

import httpx
from modeldeploy_router import proxy
from modeldeploy_router.routing import EndpointPool, RoutingTable, Track

from tests.router.frontend_harness import router_serving

SETTINGS = proxy.Settings(model="iris")


def tracks(**pools: tuple[str, ...]) -> dict[str, Track]:
    return {n: Track(name=n, version=n, pool=EndpointPool(urls)) for n, urls in pools.items()}


async def get_metric(client: httpx.AsyncClient, base: str, needle: str) -> float:
    text = (await client.get(f"{base}/metrics")).text
    lines = [ln for ln in text.splitlines() if ln.startswith(needle)]
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)


async def test_track_without_endpoints_goes_to_stable_and_is_counted(procs, caplog, port) -> None:
    stable = procs.upstream("stable")
    table = RoutingTable(
        model="iris", canary_weight=100, tracks=tracks(stable=(stable,), canary=())
    )
    async with router_serving(SETTINGS, table, port) as (_, base), httpx.AsyncClient() as client:
        for _ in range(5):
            resp = await client.post(f"{base}/predict", content=b'{"instances": [[1, 2]]}')
            assert resp.status_code == 200
            assert resp.headers["x-upstream"] == "stable"
        fell = await get_metric(
            client, base, 'modeldeploy_router_fallback_total{model="iris",track="canary"}'
        )
        assert fell == 5
        assert (
            await get_metric(
                client, base, 'modeldeploy_router_endpoints{model="iris",track="canary"}'
            )
            == 0
        )
        assert (await client.get(f"{base}/readyz")).status_code == 200
    assert any("canary has no ready endpoints" in r.getMessage() for r in caplog.records)


async def test_stable_without_endpoints_is_503_json(port) -> None:
    for table in (
        RoutingTable(model="iris", tracks=tracks(stable=(), canary=("http://127.0.0.1:1",))),
        RoutingTable(model="iris"),
    ):
        async with (
            router_serving(SETTINGS, table, port) as (_, base),
            httpx.AsyncClient() as client,
        ):
            resp = await client.post(f"{base}/predict", content=b"{}")
            assert resp.status_code == 503
            assert "stable" in resp.json()["error"]
            ready = await client.get(f"{base}/readyz")
            assert ready.status_code == 503
            assert (await client.get(f"{base}/healthz")).status_code == 200
