"""The shadow path in its child process: lifecycle, control frames, metrics.

The behaviour of mirroring itself (comparisons, drops, a slow or failing
shadow) is covered by test_shadow.py, which runs with the child process (the
default); here: what the process split adds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import orjson
from modeldeploy_router import routing, shadow, shadow_process
from modeldeploy_router.settings import Settings

OIP = "/v2/models/iris/infer"


def body(i: int) -> bytes:
    tensor = {"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [i, 0.0]}
    return orjson.dumps({"inputs": [tensor]})


def shadow_count(upstream: str) -> int:
    return httpx.get(f"{upstream}/_stats").json()["count"]


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def router_pid(procs, base: str) -> int:
    port = base.rsplit(":", 1)[1]
    return next(p.pid for p in procs.procs if port in " ".join(map(str, p.args)))


def test_metrics_exposition_has_each_family_once(procs, metric, wait) -> None:
    stable, shadow_up = procs.upstream("stable"), procs.upstream("shadow")
    router = procs.router("--backend", f"stable={stable}", "--shadow", shadow_up)
    for i in range(5):
        assert httpx.post(router + OIP, content=body(i)).status_code == 200
    wait(lambda: metric(router, "modeldeploy_router_mirror_total", result="sent") == 5, 10, "sent")
    text = httpx.get(f"{router}/metrics").text
    types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    # the router's own series and the shadow process's series side by side
    assert "# TYPE modeldeploy_router_requests_total counter" in types
    assert "# TYPE modeldeploy_router_shadow_comparisons_total counter" in types
    assert metric(router, "modeldeploy_router_shadow_comparisons_total") == 5


def test_killed_shadow_process_is_restarted_and_drops_are_counted(procs, metric, wait) -> None:
    stable, shadow_up = procs.upstream("stable"), procs.upstream("shadow")
    router = procs.router("--backend", f"stable={stable}", "--shadow", shadow_up)
    pid = router_pid(procs, router)
    (child,) = children(pid)
    os.kill(child, signal.SIGKILL)
    wait(lambda: "shadow process exited" in procs.log("router-*.log"), 10, "router notices")
    # Until the restart the primary path answers and every copy is counted as dropped.
    posted = 0
    deadline = time.monotonic() + 10
    while children(pid) in ([], [child]):
        assert time.monotonic() < deadline, "shadow process not restarted"
        assert httpx.post(router + OIP, content=body(posted)).status_code == 200
        posted += 1
    assert children(pid) != [child]
    for i in range(10):
        assert httpx.post(router + OIP, content=body(i)).status_code == 200
    posted += 10

    def accounted() -> bool:
        sent = metric(router, "modeldeploy_router_mirror_total", result="sent")
        dropped = metric(router, "modeldeploy_router_mirror_total", result="dropped")
        return sent + dropped == posted and shadow_count(shadow_up) == sent

    wait(accounted, 10, "every copy sent by the new process or counted as dropped")
    assert metric(router, "modeldeploy_router_mirror_total", result="dropped") >= 1
    assert metric(router, "modeldeploy_router_mirror_total", result="sent") >= 10


def test_shadow_process_exits_with_a_killed_router(procs) -> None:
    stable, shadow_up = procs.upstream("stable"), procs.upstream("shadow")
    router = procs.router("--backend", f"stable={stable}", "--shadow", shadow_up)
    pid = router_pid(procs, router)
    (child,) = children(pid)
    os.kill(pid, signal.SIGKILL)  # no shutdown: the child only sees its socket close
    deadline = time.monotonic() + 10
    while running(child):
        assert time.monotonic() < deadline, "shadow process outlived its router"
        time.sleep(0.05)


async def test_shadow_endpoint_changes_reach_the_process(procs) -> None:
    first, second = procs.upstream("shadow-a"), procs.upstream("shadow-b")
    channel = shadow_process.ShadowProcess(Settings(shadow_timeout=5.0, mirror_concurrency=4))

    def table(url: str) -> routing.RoutingTable:
        track = routing.Track(routing.SHADOW, "2.0.0", "r2", pool=routing.EndpointPool((url,)))
        return routing.RoutingTable(model="iris", mirror_percent=100, tracks={"shadow": track})

    def copy(i: int) -> shadow.Copy:
        reply = orjson.dumps({"outputs": [{"name": "label", "data": ["setosa"]}]})
        return shadow.Copy(
            "iris", table(first).tracks["shadow"], "1.0.0", "POST", OIP, [], body(i), 200, reply
        )

    await channel.start()
    try:
        for url in (first, second):
            channel.set_table(table(url))
            for i in range(5):
                assert channel.submit(copy(i))
            deadline = time.monotonic() + 10
            while shadow_count(url) < 5:
                assert time.monotonic() < deadline, f"copies did not reach {url}"
                await asyncio.sleep(0.05)
        assert shadow_count(first) == 5 and shadow_count(second) == 5
        text = (await channel.exposition()).decode()
        assert 'modeldeploy_router_mirror_total{model="iris",result="sent"} 10.0' in text
        assert 'shadow_revision="r2",shadow_version="2.0.0"' in text
    finally:
        await channel.stop()
    assert channel._proc is not None and channel._proc.returncode == 0


async def test_copies_waiting_for_a_write_keep_their_order_with_a_routing_change(procs) -> None:
    """Copies gather before they are written (FLUSH_SECONDS); a routing change
    written meanwhile must not overtake them: copies accepted before it go to
    the old shadow, copies after it to the new one."""
    first, second = procs.upstream("shadow-a"), procs.upstream("shadow-b")
    channel = shadow_process.ShadowProcess(Settings(shadow_timeout=5.0, mirror_concurrency=4))

    def table(url: str) -> routing.RoutingTable:
        track = routing.Track(routing.SHADOW, "2.0.0", "r2", pool=routing.EndpointPool((url,)))
        return routing.RoutingTable(model="iris", mirror_percent=100, tracks={"shadow": track})

    reply = orjson.dumps({"outputs": [{"name": "label", "data": ["setosa"]}]})
    await channel.start()
    try:
        for url in (first, second):
            channel.set_table(table(url))  # no await in between: the copies still wait
            for i in range(3):
                track = table(url).tracks["shadow"]
                assert channel.submit(
                    shadow.Copy("iris", track, "1", "POST", OIP, [], body(i), 200, reply)
                )
        deadline = time.monotonic() + 10
        while shadow_count(first) + shadow_count(second) < 6:
            assert time.monotonic() < deadline, "copies did not arrive"
            await asyncio.sleep(0.05)
        assert shadow_count(first) == 3 and shadow_count(second) == 3
    finally:
        await channel.stop()


def test_the_child_takes_the_routers_own_flag_names() -> None:
    """One name per setting: the shadow child's flags are the router's flags."""
    import argparse

    from modeldeploy_router import cli, settings

    router_flags = set(cli.build_parser()._option_string_actions)
    tuned = settings.Settings(regression_tolerance=0.5, shadow_timeout=3.0)
    args = settings.child_args(tuned)
    assert {a.split("=", 1)[0] for a in args} <= router_flags
    child = argparse.ArgumentParser()
    settings.add_child_flags(child)
    child.add_argument("--log-level")
    parsed = settings.from_child_args(child.parse_args(args))
    assert parsed.regression_tolerance == 0.5 and parsed.shadow_timeout == 3.0
