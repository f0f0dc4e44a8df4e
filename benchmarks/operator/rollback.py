"""Detection-to-rollback: from a breach visible in Prometheus to 100% on stable.

A stand-in Prometheus (the HTTP query API on loopback) answers the operator's
queries with a healthy candidate until the breach, then with a 50% error rate;
the time from the flip to `status.traffic` naming stable only is measured over
several runs. This isolates the operator's share; a real Prometheus adds at
most one scrape interval before the breach becomes visible.

    python -m benchmarks.operator.rollback --runs 5 --interval 5s [--kubeconfig FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kubernetes import client

from benchmarks.operator import common


class FakePrometheus:
    """Answers instant queries: request counts 100, error rate 0 or 0.5 after `breach()`."""

    def __init__(self) -> None:
        self.breached = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                if self.path.startswith("/-/ready"):
                    return self._send({"status": "ok"})
                query = self.path
                value = "100"
                if "code%3D~%225..%22" in query or 'code=~"5.."' in query:
                    value = "0.5" if fake.breached.is_set() else "0"
                sample = {"metric": {}, "value": [time.time(), value]}
                data = {"resultType": "vector", "result": [sample]}
                self._send({"status": "success", "data": data})

            def _send(self, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def wait_phase(custom, ns: str, name: str, phase: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = custom.get_namespaced_custom_object(
            common.GROUP, common.VERSION, ns, common.PLURAL, name
        )
        st = obj.get("status") or {}
        if st.get("phase") == phase:
            return st
        time.sleep(0.02)
    raise TimeoutError(f"{name} not {phase} within {timeout}s: {st}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--interval", default="5s", help="analysis interval of the ModelDeployment")
    p.add_argument("--tick", type=float, default=0.5, help="operator --tick")
    p.add_argument("--kubeconfig")
    args = p.parse_args(argv)
    kubeconfig = common.kubeconfig_path(args.kubeconfig)
    api = common.api(kubeconfig)
    common.apply_crd(api)
    ns = common.new_namespace(api, "bench-rollback")
    custom = client.CustomObjectsApi(api)
    prom = FakePrometheus()
    op = common.Operator(kubeconfig, ns, prom.url, args.tick)
    analysis = {
        "interval": args.interval,
        "minRequests": 10,
        "metrics": [{"name": "error-rate", "max": 0.01}],
    }
    steps = {"steps": [{"weight": 50, "pause": "1h"}]}
    interval_s = float(args.interval.rstrip("s"))
    delays = []
    try:
        for run in range(args.runs):
            name = f"r{run}"
            prom.breached.clear()
            custom.create_namespaced_custom_object(
                common.GROUP, common.VERSION, ns, common.PLURAL,
                common.body(name, "1", analysis=analysis, canary=steps),
            )  # fmt: skip
            wait_phase(custom, ns, name, "Succeeded")
            custom.patch_namespaced_custom_object(
                common.GROUP, common.VERSION, ns, common.PLURAL, name,
                {"spec": {"model": {"version": "2", "uri": f"/models/{name}/2"}}},
            )  # fmt: skip
            wait_phase(custom, ns, name, "Canary")
            time.sleep(random.uniform(0, interval_s))  # breach at any point of the interval
            prom.breached.set()
            flipped = time.monotonic()
            st = wait_phase(custom, ns, name, "RolledBack")
            delay = time.monotonic() - flipped
            assert set(st["traffic"]["tracks"]) == {"stable"}
            delays.append(delay)
            print(f"run {run}: breach -> 100% stable in {delay:.2f} s", flush=True)
    finally:
        op.stop()
        prom.close()
        client.CoreV1Api(api).delete_namespace(ns)
    print(
        f"interval {args.interval}, tick {args.tick}s, {len(delays)} runs: "
        f"median {statistics.median(delays):.2f} s, max {max(delays):.2f} s "
        f"(bound without scrape: interval + 2 s = {interval_s + 2:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
