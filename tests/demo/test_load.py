"""The demo's load generator against a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from modeldeploy_devcluster.waiting import wait_for

from demo.load import Load


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.delay, self.in_flight, self.peak, self.bodies = delay, 0, 0, []
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_POST(self) -> None:
        s = self.server
        with s.lock:
            s.in_flight += 1
            s.peak = max(s.peak, s.in_flight)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(s.delay)
        fail = body[0]["x"] < 0
        out = json.dumps({"version": "1.0.0"}).encode()
        # Out of flight before the answer leaves: once the client has it, it may
        # send the next request before this thread would count down.
        with s.lock:
            s.in_flight -= 1
            s.bodies.append(body)
        self.send_response(500 if fail else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


def serve(delay: float) -> tuple[Server, str]:
    server = Server(delay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_records_versions_and_failures_at_a_steady_rate():
    server, url = serve(0.0)
    try:
        with Load(url, [{"x": 1.0}, {"x": -1.0}], rate=50) as load:
            wait_for(lambda: len(load.snapshot()) >= 20, 10, message="20 answers")
            served, failed = load.since_last()
            assert served["1.0.0"] > 0 and failed > 0
            again, _ = load.since_last()
            assert sum(again.values()) < served["1.0.0"] + failed  # only what is new
        # Every request sent was answered and recorded before exit; rows alternate.
        codes = [code for _, code, _ in load.snapshot()]
        assert set(codes) == {200, 500} and abs(codes.count(200) - codes.count(500)) <= 1
        assert [{"x": 1.0}] in server.bodies  # one row per request, as users send
    finally:
        server.shutdown()


def test_in_flight_requests_are_bounded_by_concurrency():
    server, url = serve(0.3)  # a slow server must not make requests pile up
    try:
        with Load(url, [{"x": 1.0}], rate=100, concurrency=3) as load:
            wait_for(lambda: len(load.snapshot()) >= 9, 15, message="9 answers")
        assert server.peak <= 3
        ts = [t for t, _, _ in load.snapshot()]
        assert len(ts) < 100 * (max(ts) + 1) / 3  # far fewer than the nominal rate
    finally:
        server.shutdown()
