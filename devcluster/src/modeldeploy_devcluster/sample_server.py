"""A small HTTP server for smoke runs and tests of the local cluster.

``GET /`` answers who it is (pod name, pid, address), ``/healthz`` is for
probes and ``/metrics`` serves Prometheus text, so one process exercises
scheduling, endpoints, probes and service discovery.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

REGISTRY = CollectorRegistry()
REQUESTS = Counter("devcluster_sample_requests", "Requests served", ["path"], registry=REGISTRY)


class Handler(BaseHTTPRequestHandler):
    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        REQUESTS.labels(path=path if path in ("/", "/healthz", "/metrics") else "other").inc()
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif path == "/":
            bound = self.server.server_address
            me = {
                "pod": os.environ.get("POD_NAME", socket.gethostname()),
                "pid": os.getpid(),
                "address": bound[0] if isinstance(bound, tuple) else str(bound),
                "kubeconfig": os.environ.get("KUBECONFIG", ""),
            }
            self._send(200, json.dumps(me).encode(), "application/json")
        else:
            self._send(404, b'{"error": "not found"}', "application/json")

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pod logs for the application's own output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"serving on http://{args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
