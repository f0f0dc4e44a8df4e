"""API requests per ModelDeployment, and what a settled operator costs at rest.

Counts the API server's own `apiserver_request_total` (by verb and resource)
around two phases: N ModelDeployments created until all are Succeeded, then
all N changed until all are promoted; then the operator's CPU over an idle
period and its resident memory with N settled objects (other clients' idle
traffic, e.g. namespace cleanup of earlier runs, makes an idle request rate
meaningless here, so none is printed). Writes to
`modeldeployments` (not `/status`) come from Kopf's bookkeeping (finalizer,
diff-base annotation); the rest is the reconcile's own work. Other clients
(the controller-manager) are counted too, which is why the table splits by
resource.

    python -m benchmarks.operator.api_calls --count 100 [--kubeconfig FILE]
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter

from kubernetes import client

from benchmarks.operator import common, scale

_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')
RESOURCES = ("modeldeployments", "deployments", "services", "pods", "events")


def requests(api: client.ApiClient) -> Counter[tuple[str, str]]:
    """Requests so far by (verb, resource[/subresource]) from the API server's /metrics."""
    headers: dict[str, str] = {}
    api.update_params_for_auth(headers, None, ["BearerToken"], "/metrics", "GET", None)
    response = api.call_api("GET", api.configuration.host + "/metrics", headers)
    response.read()
    counts: Counter[tuple[str, str]] = Counter()
    for labels, value in _SAMPLE.findall(response.data.decode()):
        tags = dict(_LABEL.findall(labels))
        resource = tags.get("resource", "")
        if tags.get("subresource"):
            resource += "/" + tags["subresource"]
        counts[(tags.get("verb", ""), resource)] += int(float(value))
    return counts


def per_object(before: Counter, after: Counter, n: int) -> dict[tuple[str, str], float]:
    return {
        key: (after[key] - before[key]) / n
        for key in sorted(after)
        if after[key] > before[key] and key[1].split("/")[0] in RESOURCES
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--kubeconfig")
    p.add_argument("--tick", type=float, default=2.0)
    p.add_argument("--idle", type=float, default=20.0, help="seconds of idle measured")
    p.add_argument("--timeout", type=float, default=900)
    args = p.parse_args(argv)
    kubeconfig = common.kubeconfig_path(args.kubeconfig)
    api = common.api(kubeconfig)
    common.apply_crd(api)
    n = args.count
    ns = common.new_namespace(api, f"bench-api-{n}")
    scale.forbid_pods(api, ns)
    custom = client.CustomObjectsApi(api)
    op = common.Operator(kubeconfig, ns, "http://127.0.0.1:9", args.tick)
    try:
        time.sleep(2)  # operator startup is not part of the figure
        r0 = requests(api)
        for i in range(n):
            custom.create_namespaced_custom_object(
                common.GROUP, common.VERSION, ns, common.PLURAL, common.body(f"m{i}", "1")
            )
        assert scale.wait_all(custom, ns, n, "1", op, args.timeout), "create did not finish"
        time.sleep(3)  # let the last bookkeeping writes land
        r1 = requests(api)
        for i in range(n):
            custom.patch_namespaced_custom_object(
                common.GROUP, common.VERSION, ns, common.PLURAL, f"m{i}",
                {"spec": {"model": {"version": "2", "uri": f"/models/m{i}/2"}}},
            )  # fmt: skip
        assert scale.wait_all(custom, ns, n, "2", op, args.timeout), "rollout did not finish"
        time.sleep(3)
        r2 = requests(api)
        cpu0 = op.cpu_seconds()
        time.sleep(args.idle)
        idle_cpu = (op.cpu_seconds() - cpu0) / args.idle * 100
        rss = op.rss_mib()
        print(f"N={n} tick={args.tick}s: requests per ModelDeployment (all clients)")
        print(f"{'verb':<8} {'resource':<28} {'create':>8} {'rollout':>8}")
        create, rollout = per_object(r0, r1, n), per_object(r1, r2, n)
        for key in sorted(set(create) | set(rollout)):
            c, r = create.get(key, 0), rollout.get(key, 0)
            print(f"{key[0]:<8} {key[1]:<28} {c:>8.2f} {r:>8.2f}")
        print(f"idle ({args.idle:g} s, {n} settled): operator CPU {idle_cpu:.1f} %, "
              f"RSS {rss:.0f} MiB, peak {op.peak_rss:.0f} MiB")  # fmt: skip
    finally:
        op.stop()
        client.CoreV1Api(api).delete_namespace(ns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
