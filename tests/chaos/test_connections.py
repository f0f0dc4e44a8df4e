"""The operator's connections to the API server cut and blackholed.

The operator talks to kube-apiserver through a TCP proxy the test controls
(netfaults.TcpProxy): its watch and its API calls go through the same proxy.
The rollout must continue from where it was, no step skipped or repeated, and
the operator must see the next spec change after the fault. test_c makes
the API server answer 410 Gone to the operator's resumed watch; a 410 on the
router's relist is covered in tests/router/test_cluster.py, the router's own
connections cut in test_router_watch.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_helpers import (
    GROUP,
    PLURAL,
    VERSION,
    Env,
    OperatorProcess,
    apply_crd,
    manifest,
    wait_for,
)
from faults import compact_etcd
from kubernetes import client
from netfaults import TcpProxy, proxied_kubeconfig, upstream_of

pytestmark = [pytest.mark.cluster, pytest.mark.chaos]

STEPS = [{"weight": 25, "pause": "6s"}, {"weight": 50, "pause": "4s"}]


def _proxied(cluster, namespace, tmp_path, *flags: str) -> Iterator[tuple[Env, TcpProxy]]:
    apply_crd(cluster.api_client())
    proxy = TcpProxy(*upstream_of(cluster.server)).start()
    kubeconfig = proxied_kubeconfig(cluster.kubeconfig, proxy, tmp_path / "kubeconfig")
    env = Env(cluster, namespace, cluster.prometheus_url)
    env.operator = OperatorProcess(kubeconfig, cluster.prometheus_url, namespace, *flags).start()
    try:
        yield env, proxy
    finally:
        env.operator.close()
        proxy.close()


@pytest.fixture
def proxied(cluster, namespace, tmp_path) -> Iterator[tuple[Env, TcpProxy]]:
    """Env whose operator reaches the API server only through a TcpProxy."""
    yield from _proxied(cluster, namespace, tmp_path)


@pytest.fixture
def proxied_debug(cluster, namespace, tmp_path) -> Iterator[tuple[Env, TcpProxy]]:
    """The same, the operator logging at debug (Kopf names its watch restarts there)."""
    yield from _proxied(cluster, namespace, tmp_path, "--log-level", "debug")


class Walk:
    """The (phase, step) sequence the status went through, without repeats."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.seen: list[tuple[str, int]] = []

    def __call__(self, st: dict[str, Any]) -> bool:
        here = (st.get("phase", ""), int(st.get("currentStep") or 0))
        if not self.seen or self.seen[-1] != here:
            self.seen.append(here)
        return st.get("phase") == "Succeeded" and (st.get("stable") or {}).get("version") == (
            self.version
        )

    def canary_steps(self) -> list[int]:
        return [step for phase, step in self.seen if phase == "Canary"]


def reconnected(proxy: TcpProxy, before: int) -> None:
    wait_for(lambda: proxy.accepted > before, 30, message="the operator to reconnect")


def next_change_seen(env: Env, version: str) -> float:
    """Apply `version`; seconds until the operator acted on it (status generation)."""
    generation = env.get()["metadata"]["generation"]
    started = time.monotonic()
    env.apply(manifest(version, STEPS))
    seen = f"{version} seen after the fault"
    env.wait_status(lambda s: s.get("observedGeneration", 0) > generation, seen, 120)
    return round(time.monotonic() - started, 1)


def v2_at_step_1(env: Env) -> Walk:
    """v1 rolled out, then v2 applied and at its first canary step."""
    env.apply(manifest("1.0.0", STEPS))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 Succeeded")
    walk = Walk("2.0.0")
    env.apply(manifest("2.0.0", STEPS))
    env.wait_status(lambda s: (walk(s), s.get("phase") == "Canary")[1], "v2 at step 1")
    return walk


def test_a_watch_and_calls_cut_and_blackholed_mid_canary(proxied, figures):
    env, proxy = proxied
    walk = v2_at_step_1(env)
    cut = 0
    for _ in range(3):  # every connection dropped, three times over
        before = proxy.accepted
        cut += proxy.cut()
        reconnected(proxy, before)
    proxy.blackhole()
    time.sleep(8)  # the fault: nothing answers for this long (longer than the step's pause)
    st = env.status()
    proxy.heal(reset_held=True)
    env.wait_status(walk, "v2 promoted after the fault", 60)
    seen_after_s = next_change_seen(env, "3.0.0")
    figures.update(connections_cut=cut, blackhole_s=8, next_change_seen_s=seen_after_s)
    assert walk.canary_steps() == [0, 1], walk.seen  # no step skipped or repeated
    assert st.get("stable", {}).get("version") == "1.0.0"  # nothing moved while blind
    assert "RolledBack" not in env.events()


# Waits out the 30 s read timeout: long; tests/operator/test_kube_timeout.py is the fast check.
@pytest.mark.chaos_long
def test_b_silently_dead_connections_do_not_park_the_rollout(proxied, figures):
    """Connections that went silent for ever (a lost NAT/conntrack entry): only
    the operator's own timeouts can end them; the rollout must not wait on them."""
    env, proxy = proxied
    walk = v2_at_step_1(env)
    proxy.blackhole()
    time.sleep(3)
    healed = time.monotonic()
    proxy.heal(reset_held=False)
    env.wait_status(walk, "v2 promoted although its old connections are dead", 90)
    promoted_s = round(time.monotonic() - healed, 1)
    seen_after_s = next_change_seen(env, "3.0.0")
    figures.update(heal_to_promoted_s=promoted_s, next_change_seen_s=seen_after_s)
    assert walk.canary_steps() == [0, 1], walk.seen


# Kopf's line when a watch-stream answers 410 Gone and it lists again (debug).
RELIST = "Restarting the watch-stream for modeldeployments"


def watch_answer(env: Env, resource_version: str) -> int:
    """The code the API server gives a watch of this namespace's ModelDeployments
    resumed from `resource_version`: 200 if it streams, else its error code
    (410 when that version is gone)."""
    custom = client.CustomObjectsApi(env.api)
    try:
        answer = custom.list_namespaced_custom_object(
            GROUP, VERSION, env.namespace, PLURAL, watch=True,
            resource_version=resource_version, timeout_seconds=1, _preload_content=False,
        )  # fmt: skip
    except client.ApiException as exc:
        return exc.status
    try:
        for line in answer.read().decode().splitlines():
            event = json.loads(line)
            if event["type"] == "ERROR":
                return int(event["object"]["code"])
        return 200
    finally:
        answer.release_conn()


def test_c_410_gone_on_the_resumed_watch(proxied_debug, cluster, figures):
    """The operator's watch is resumed from a version the API server no longer
    holds. A running API server serves resumed watches from its watch cache
    (etcd compaction alone never reaches them); one that restarted, like
    another replica behind a load balancer, starts its cache at its first list.
    So: the operator is cut off, etcd's history is compacted, kube-apiserver
    restarts, and the operator's connections are reset: its resumed watch
    gets 410 Gone, it must list again and carry on."""
    env, proxy = proxied_debug
    walk = v2_at_step_1(env)
    proxy.blackhole()  # nothing the operator holds is newer than `stale`
    stale = client.CustomObjectsApi(env.api).list_namespaced_custom_object(
        GROUP, VERSION, env.namespace, PLURAL
    )["metadata"]["resourceVersion"]
    assert watch_answer(env, stale) == 200  # still served before the fault
    # One write after it, so that the restarted API server's first list is newer.
    client.CoreV1Api(env.api).create_namespaced_config_map(
        env.namespace, {"metadata": {"name": "chaos-after-stale"}}
    )
    relists_before = env.operator.output().count(RELIST)
    started = time.monotonic()
    cluster.stop_component("kube-apiserver")
    compacted = compact_etcd(cluster)
    cluster.start_component("kube-apiserver")
    api_away_s = round(time.monotonic() - started, 1)
    gone = watch_answer(env, stale)
    st = env.status()
    proxy.heal(reset_held=True)
    healed = time.monotonic()
    wait_for(
        lambda: env.operator.output().count(RELIST) > relists_before,
        60,
        message="the operator to meet 410 Gone and list again",
    )
    relisted_s = round(time.monotonic() - healed, 1)
    env.wait_status(walk, "v2 promoted after the 410", 90)
    seen_after_s = next_change_seen(env, "3.0.0")
    env.wait_status(
        lambda s: s.get("phase") == "Succeeded" and s["stable"]["version"] == "3.0.0",
        "3.0.0 rolled out after the 410",
        90,
    )
    figures.update(
        compacted_revision=compacted,
        stale_resource_version=stale,
        api_away_s=api_away_s,
        heal_to_relist_s=relisted_s,
        relists=env.operator.output().count(RELIST) - relists_before,
        next_change_seen_s=seen_after_s,
    )
    assert gone == 410, gone  # the version the operator resumes from (or older) is gone
    assert walk.canary_steps() == [0, 1], walk.seen  # continued from its step
    assert st.get("stable", {}).get("version") == "1.0.0"  # nothing moved while blind
    assert "RolledBack" not in env.events()
