"""Scale: N ModelDeployments (0 replicas, no pods) handled by one operator.

The namespace gets a ResourceQuota of zero pods, so neither the predictor
(0 replicas) nor the per-model router (1 replica) starts a process on the
dev cluster's node: the figure is the operator's and the API server's cost,
not 1000 router processes competing for the same 2 cores.

For each N: create N objects, time until all are Succeeded; then change the
model version of all N (N rollouts at once), time until all are promoted;
report the operator's CPU seconds and peak resident memory.

    python -m benchmarks.operator.scale --counts 100,300,1000 [--kubeconfig FILE]
"""

from __future__ import annotations

import argparse
import time

from kubernetes import client

from benchmarks.operator import common


def wait_all(custom: client.CustomObjectsApi, ns: str, n: int, version: str, op, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op.rss_mib()
        items = custom.list_namespaced_custom_object(
            common.GROUP, common.VERSION, ns, common.PLURAL
        )["items"]
        done = sum(
            1
            for i in items
            if (i.get("status") or {}).get("phase") == "Succeeded"
            and (i["status"].get("stable") or {}).get("version") == version
        )
        if done == n:
            return True
        time.sleep(0.5)
    return False


def forbid_pods(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_resource_quota(
        ns, {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # admission enforces it once the controller has counted
        if (core.read_namespaced_resource_quota("no-pods", ns).status.hard or {}).get("pods"):
            return
        time.sleep(0.2)
    raise RuntimeError("the no-pods ResourceQuota was never counted")


def run(kubeconfig: str, n: int, tick: float, timeout: float) -> dict[str, float]:
    api = common.api(kubeconfig)
    common.apply_crd(api)
    ns = common.new_namespace(api, f"bench-scale-{n}")
    forbid_pods(api, ns)
    custom = client.CustomObjectsApi(api)
    op = common.Operator(kubeconfig, ns, "http://127.0.0.1:9", tick)
    try:
        time.sleep(2)  # operator startup is not part of the figure
        cpu0, t0 = op.cpu_seconds(), time.monotonic()
        for i in range(n):
            custom.create_namespaced_custom_object(
                common.GROUP, common.VERSION, ns, common.PLURAL, common.body(f"m{i}", "1")
            )
        ok1 = wait_all(custom, ns, n, "1", op, timeout)
        t1, cpu1 = time.monotonic(), op.cpu_seconds()
        for i in range(n):
            custom.patch_namespaced_custom_object(
                common.GROUP, common.VERSION, ns, common.PLURAL, f"m{i}",
                {"spec": {"model": {"version": "2", "uri": f"/models/m{i}/2"}}},
            )  # fmt: skip
        ok2 = wait_all(custom, ns, n, "2", op, timeout)
        t2, cpu2 = time.monotonic(), op.cpu_seconds()
        time.sleep(5)  # steady state: idle CPU over 5 s
        cpu3 = op.cpu_seconds()
        return {
            "n": n,
            "create_s": t1 - t0 if ok1 else float("nan"),
            "create_cpu_s": cpu1 - cpu0,
            "rollout_s": t2 - t1 if ok2 else float("nan"),
            "rollout_cpu_s": cpu2 - cpu1,
            "idle_cpu_pct": (cpu3 - cpu2) / 5 * 100,
            "peak_rss_mib": op.peak_rss,
        }
    finally:
        op.stop()
        client.CoreV1Api(api).delete_namespace(ns)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="100,300,1000")
    p.add_argument("--kubeconfig")
    p.add_argument("--tick", type=float, default=2.0)
    p.add_argument("--timeout", type=float, default=900)
    args = p.parse_args(argv)
    kubeconfig = common.kubeconfig_path(args.kubeconfig)
    print(f"{'N':>6} {'create s':>9} {'cpu s':>7} {'rollout s':>10} {'cpu s':>7} "
          f"{'idle cpu%':>9} {'peak RSS MiB':>13}")  # fmt: skip
    for n in (int(c) for c in args.counts.split(",")):
        r = run(kubeconfig, n, args.tick, args.timeout)
        print(f"{r['n']:>6} {r['create_s']:>9.1f} {r['create_cpu_s']:>7.1f} "
              f"{r['rollout_s']:>10.1f} {r['rollout_cpu_s']:>7.1f} {r['idle_cpu_pct']:>9.1f} "
              f"{r['peak_rss_mib']:>13.0f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
