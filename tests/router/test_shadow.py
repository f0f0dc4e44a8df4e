"""Process tests of shadow mirroring and the live prediction comparison."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

OIP = "/v2/models/iris/infer"
SHADOW = ("--track-version", "stable=1.0.0", "--track-version", "shadow=2.0.0")


def body(ids: list[int], path: str = OIP) -> bytes:
    if path == OIP:
        data = [v for i in ids for v in (i, 0.0)]
        tensor = {"name": "x", "shape": [len(ids), 2], "datatype": "FP64", "data": data}
        return orjson.dumps({"inputs": [tensor]})
    return orjson.dumps({"instances": [[i, 0.0] for i in ids]})


def shadow_count(shadow: str) -> int:
    return httpx.get(f"{shadow}/_stats").json()["count"]


@pytest.mark.parametrize("mode", [("--delay", "1.5"), ("--status", "500")], ids=["slow", "failing"])
def test_mirror_reaches_shadow_and_never_changes_primary(procs, metric, wait, mode) -> None:
    stable = procs.upstream("stable")
    shadow = procs.upstream("shadow", "--disagree-percent", "50", *mode)
    router = procs.router(
        "--backend", f"stable={stable}", "--shadow", shadow, *SHADOW, "--shadow-timeout", "5"
    )
    n = 40
    with httpx.Client() as client:
        for i in range(n):
            payload = body([i, i + 1])
            expected = client.post(stable + OIP, content=payload)
            started = time.perf_counter()
            got = client.post(router + OIP, content=payload)
            elapsed = time.perf_counter() - started
            assert got.status_code == 200
            assert got.content == expected.content
            assert got.headers["x-upstream"] == "stable"
            assert elapsed < 1.0, "the shadow's delay reached the primary response"
    wait(lambda: shadow_count(shadow) == n, 10, "every request mirrored to the shadow")
    if "--status" in mode:
        wait(
            lambda: (
                metric(router, "modeldeploy_router_shadow_errors_total", shadow_version="2.0.0")
                == n
            ),
            10,
            "shadow errors counted",
        )
        assert metric(router, "modeldeploy_router_shadow_comparisons_total") == 0
    else:
        wait(
            lambda: metric(router, "modeldeploy_router_shadow_comparisons_total") == 2 * n,
            15,
            "slow shadow answers compared",
        )
    # the mirror never adds primary requests
    assert httpx.get(f"{stable}/_stats").json()["count"] == 2 * n  # n direct + n routed


def test_full_queue_drops_and_counts(procs, metric, wait) -> None:
    stable = procs.upstream("stable")
    shadow = procs.upstream("shadow", "--delay", "8")
    router = procs.router(
        "--backend",
        f"stable={stable}",
        "--shadow",
        shadow,
        "--mirror-queue",
        "3",
        "--mirror-concurrency",
        "1",
        "--shadow-timeout",
        "10",
    )
    n = 30
    with httpx.Client() as client:
        for i in range(n):
            assert client.post(router + OIP, content=body([i])).status_code == 200
    dropped = metric(router, "modeldeploy_router_mirror_total", result="dropped")
    # one copy in flight plus three queued; the rest must have been dropped at once
    assert dropped >= n - 4 - 1
    assert dropped <= n - 4


@pytest.mark.parametrize("path", [OIP, "/v1/models/iris:predict", "/predict"])
def test_classifier_agreement_for_known_disagreement(procs, metric, wait, path) -> None:
    stable = procs.upstream("stable")
    shadow = procs.upstream("shadow", "--disagree-percent", "20", "--version", "2.0.0")
    router = procs.router("--backend", f"stable={stable}", "--shadow", shadow, *SHADOW)
    rows = 1000
    with httpx.Client() as client:
        for start in range(0, rows, 10):
            assert client.post(router + path, content=body(list(range(start, start + 10)), path))
    labels = {"model": "iris", "primary_version": "1.0.0", "shadow_version": "2.0.0"}
    wait(
        lambda: metric(router, "modeldeploy_router_shadow_comparisons_total", **labels) == rows,
        15,
        "all rows compared",
    )
    assert metric(router, "modeldeploy_router_shadow_agreements_total", **labels) == 800
    assert metric(router, "modeldeploy_router_mirror_total", result="sent") == rows / 10
    assert metric(router, "modeldeploy_router_shadow_duration_seconds_count") == rows / 10


def test_regressor_differences_for_known_offset(procs, metric, wait) -> None:
    stable = procs.upstream("stable", "--kind", "regressor")
    shadow = procs.upstream(
        "shadow", "--kind", "regressor", "--disagree-percent", "30", "--offset", "1000"
    )
    router = procs.router("--backend", f"stable={stable}", "--shadow", shadow, *SHADOW)
    rows = 500
    with httpx.Client() as client:
        for start in range(0, rows, 25):
            assert client.post(router + OIP, content=body(list(range(start, start + 25))))
    wait(
        lambda: metric(router, "modeldeploy_router_shadow_comparisons_total") == rows,
        15,
        "all rows compared",
    )
    assert metric(router, "modeldeploy_router_shadow_agreements_total") == 350
    assert metric(router, "modeldeploy_router_shadow_abs_diff_count") == rows
    assert metric(router, "modeldeploy_router_shadow_abs_diff_sum") == pytest.approx(150 * 1000)
    # 350 rows differ by exactly 0 -> they sit in the lowest bucket
    assert metric(router, "modeldeploy_router_shadow_abs_diff_bucket", le="0.0") == 350
    assert metric(router, "modeldeploy_router_shadow_rel_diff_count") == rows


def test_mirror_percent_share(procs, metric, wait) -> None:
    stable, shadow = procs.upstream("stable"), procs.upstream("shadow")
    router = procs.router(
        "--backend", f"stable={stable}", "--shadow", shadow, "--mirror-percent", "25", "--seed", "5"
    )
    n = 800
    with httpx.Client() as client:
        for i in range(n):
            client.post(router + OIP, content=body([i]))

    def sent() -> float:
        return metric(router, "modeldeploy_router_mirror_total", result="sent")

    wait(lambda: shadow_count(shadow) == sent(), 10, "every copy answered")
    sent = sent()
    # binomial(800, 0.25): sd ~ 12.2
    assert abs(sent - 200) <= 5 * 12.25
    assert metric(router, "modeldeploy_router_mirror_percent") == 25
