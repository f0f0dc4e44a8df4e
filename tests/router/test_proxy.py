"""Process tests: the router and predictor-shaped upstreams over loopback HTTP."""

from __future__ import annotations

import asyncio
import math

import aiohttp
import httpx
import orjson
import pytest

OIP = "/v2/models/iris/infer"


def oip_body(ids: list[int]) -> bytes:
    data = [v for i in ids for v in (i, 1.0)]
    return orjson.dumps(
        {"inputs": [{"name": "x", "shape": [len(ids), 2], "datatype": "FP64", "data": data}]}
    )


async def fire(
    url: str, bodies: list[bytes], headers: list[dict] | None = None, concurrency: int = 16
) -> list[tuple[int, dict, bytes]]:
    """POST every body (in order of the list) with bounded concurrency."""
    sem = asyncio.Semaphore(concurrency)
    headers = headers or [{} for _ in bodies]

    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def one(body: bytes, hdrs: dict) -> tuple[int, dict, bytes]:
            async with sem, session.post(url, data=body, headers=hdrs) as resp:
                return resp.status, dict(resp.headers), await resp.read()

        return await asyncio.gather(*(one(b, h) for b, h in zip(bodies, headers, strict=True)))


def split_router(procs, stable: str, canary: str, weight: int, *extra: str) -> str:
    return procs.router(f"--backend=stable={stable}", f"--backend=canary={canary}",
                        f"--weight={weight}", *extra)  # fmt: skip


def stats(upstream: str) -> dict:
    return httpx.get(f"{upstream}/_stats").json()


def test_forwards_every_shape_unchanged_with_request_id(procs) -> None:
    stable = procs.upstream("stable")
    router = procs.router("--backend", f"stable={stable}")
    cases = [
        (OIP, oip_body([0, 1, 2])),
        ("/v1/models/iris:predict", b'{"instances": [[4, 0], [5, 0]]}'),
        ("/predict?explain=false", b'{"instances": [[7, 1]]}'),
    ]
    for path, body in cases:
        direct = httpx.post(stable + path, content=body)
        via = httpx.post(router + path, content=body, headers={"x-request-id": f"rid-{path}"})
        assert via.status_code == direct.status_code == 200
        assert via.content == direct.content
        assert via.headers["x-request-id"] == f"rid-{path}"
        assert via.headers["x-modeldeploy-track"] == "stable"
        assert via.headers["x-upstream"] == "stable"
    generated = httpx.post(router + OIP, content=oip_body([1]))
    assert len(generated.headers["x-request-id"]) == 32
    seen = stats(stable)["request_ids"]
    assert [f"rid-{p}" for p, _ in cases] == seen[1::2][:3]
    assert generated.headers["x-request-id"] == seen[-1]
    assert stats(stable)["paths"]["/predict"] == 2  # query string kept, path unchanged
    # the predictor's own health endpoints are forwarded, the router's answered locally
    assert httpx.get(router + "/v2/health/live").json() == {"live": True}
    assert httpx.get(router + "/readyz").status_code == 200


def test_bad_input_is_forwarded_and_upstream_error_returned(procs) -> None:
    stable = procs.upstream("stable")
    router = procs.router("--backend", f"stable={stable}")
    resp = httpx.post(router + OIP, content=b"{not json")
    assert resp.status_code == 422
    assert "bad request" in resp.json()["error"]


@pytest.mark.parametrize("weight", [0, 30, 100])
async def test_split_ratio_within_binomial_bound(procs, metric, weight: int) -> None:
    stable, canary = procs.upstream("stable"), procs.upstream("canary", "--version", "2.0.0")
    router = split_router(
        procs, stable, canary, weight, "--seed", "11", "--track-version=canary=2.0.0"
    )
    n = 3000
    results = await fire(router + OIP, [oip_body([i]) for i in range(n)])
    assert all(status == 200 for status, _, _ in results)
    by_header = sum(h["x-modeldeploy-track"] == "canary" for _, h, _ in results)
    assert by_header == stats(canary)["count"]
    assert n - by_header == stats(stable)["count"]
    p = weight / 100
    assert abs(by_header - n * p) <= 5 * math.sqrt(n * p * (1 - p))
    counted = metric(router, "modeldeploy_router_requests_total", track="canary", code="200")
    assert counted == by_header
    assert metric(router, "modeldeploy_router_canary_weight") == weight


async def test_sticky_keys_hold_across_weight_raise(procs) -> None:
    stable, canary = procs.upstream("stable"), procs.upstream("canary")
    keys = [f"customer-{i}" for i in range(600)]

    async def tracks_at(weight: int) -> dict[str, str]:
        router = split_router(procs, stable, canary, weight)
        # every key twice: the same key must land on the same track each time
        hdrs = [{"x-modeldeploy-key": k} for k in keys * 2]
        results = await fire(router + OIP, [oip_body([1])] * len(hdrs), hdrs)
        seen: dict[str, str] = {}
        for h, (_, resp_headers, _) in zip(hdrs, results, strict=True):
            track = resp_headers["x-modeldeploy-track"]
            assert seen.setdefault(h["x-modeldeploy-key"], track) == track
        return seen

    at_20, at_60 = await tracks_at(20), await tracks_at(60)
    canary_20 = {k for k, t in at_20.items() if t == "canary"}
    canary_60 = {k for k, t in at_60.items() if t == "canary"}
    assert canary_20 < canary_60  # only stable -> canary moves
    for share, weight in ((len(canary_20), 20), (len(canary_60), 60)):
        p = weight / 100
        assert abs(share - p * len(keys)) <= 5 * math.sqrt(len(keys) * p * (1 - p))


def test_retry_once_on_another_endpoint_of_same_track(procs, metric) -> None:
    dead = procs.dead_url()
    stable = procs.upstream("stable")
    router = procs.router("--backend", f"stable={dead}", "--backend", f"stable={stable}")
    for i in range(20):
        assert httpx.post(router + OIP, content=oip_body([i])).status_code == 200
    assert stats(stable)["count"] == 20
    assert metric(router, "modeldeploy_router_requests_total", code="200") == 20


def test_canary_errors_never_go_to_stable(procs, metric) -> None:
    stable = procs.upstream("stable")
    dead = procs.dead_url()
    failing = procs.upstream("canary", "--status", "500")
    router = procs.router(
        "--backend",
        f"stable={stable}",
        "--backend",
        f"canary={dead}",
        "--backend",
        f"canary={failing}",
        "--weight",
        "100",
    )
    codes = [httpx.post(router + OIP, content=oip_body([i])).status_code for i in range(10)]
    assert codes == [500] * 10  # the dead endpoint was retried on the other canary endpoint
    assert stats(stable)["count"] == 0
    assert metric(router, "modeldeploy_router_requests_total", track="canary", code="500") == 10
    # no endpoint of the track accepts a connection: the request never left, so
    # it goes to stable (issue 16), counted
    only_dead = procs.router(
        "--backend", f"stable={stable}", "--backend", f"canary={dead}", "--weight", "100"
    )
    resp = httpx.post(only_dead + OIP, content=oip_body([1]))
    assert resp.status_code == 200
    assert resp.headers["x-modeldeploy-track"] == "stable"
    assert stats(stable)["count"] == 1
    fell = metric(only_dead, "modeldeploy_router_fallback_total", track="canary", to="stable")
    assert fell == 1


def test_upstream_timeout_is_504(procs) -> None:
    slow = procs.upstream("stable", "--delay", "3")
    router = procs.router("--backend", f"stable={slow}", "--timeout", "0.3")
    resp = httpx.post(router + OIP, content=oip_body([1]), timeout=10)
    assert resp.status_code == 504
    assert "timed out" in resp.json()["error"]


def test_track_override_only_when_allowed(procs) -> None:
    stable, canary = procs.upstream("stable"), procs.upstream("canary")
    shadow = procs.upstream("shadow")
    args = ["--backend", f"stable={stable}", "--backend", f"canary={canary}", "--shadow", shadow]
    closed = procs.router(*args)
    resp = httpx.post(
        closed + OIP, content=oip_body([1]), headers={"x-modeldeploy-track": "canary"}
    )
    assert resp.headers["x-modeldeploy-track"] == "stable"
    opened = procs.router(*args, "--allow-track-override", "--mirror-percent", "0")
    for track in ("stable", "canary", "shadow"):
        r = httpx.post(opened + OIP, content=oip_body([1]), headers={"x-modeldeploy-track": track})
        assert r.headers["x-upstream"] == track
    bad = httpx.post(opened + OIP, content=oip_body([1]), headers={"x-modeldeploy-track": "blue"})
    assert bad.status_code == 400
    assert "x-modeldeploy-track" in bad.json()["error"]


def test_body_over_limit_is_413(procs) -> None:
    stable = procs.upstream("stable")
    router = procs.router("--backend", f"stable={stable}", "--max-body-bytes", "100")
    resp = httpx.post(router + OIP, content=b"x" * 1000)
    assert resp.status_code == 413
    assert "100 bytes" in resp.json()["error"]
    assert stats(stable)["count"] == 0
