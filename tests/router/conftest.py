"""Process fixtures for the router tests: real upstream and router processes
on loopback, each in its own process group and stopped after the test."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from modeldeploy_devcluster import procs as process_groups

# The in-process HTTP tests' fixture, defined with their harness.
from tests.router.harness import run  # noqa: F401

HERE = Path(__file__).resolve().parent
UPSTREAM_APP = HERE / "upstream_app.py"
ROUTER = Path(sys.executable).with_name("modeldeploy-router")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=0.5)
            return
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class Processes:
    """Starts upstreams and routers; the fixture stops all of them."""

    def __init__(self, tmp_path: Path) -> None:
        self.procs: list[subprocess.Popen] = []
        self.tmp_path = tmp_path

    def _start(self, cmd: list[str], health: str, name: str) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        wait_http(health, proc)
        return proc

    def upstream(self, name: str = "stable", *args: str) -> str:
        port = free_port()
        cmd = [sys.executable, str(UPSTREAM_APP), "--port", str(port), "--name", name, *args]
        self._start(cmd, f"http://127.0.0.1:{port}/v2/health/live", f"upstream-{name}-{port}")
        return f"http://127.0.0.1:{port}"

    def router(self, *args: str) -> str:
        port = free_port()
        cmd = [str(ROUTER), "--port", str(port), "--model", "iris", *args]
        self._start(cmd, f"http://127.0.0.1:{port}/healthz", f"router-{port}")
        return f"http://127.0.0.1:{port}"

    def dead_url(self) -> str:
        """A loopback URL nothing listens on (connection refused)."""
        return f"http://127.0.0.1:{free_port()}"

    def log(self, pattern: str) -> str:
        return "".join(p.read_text() for p in self.tmp_path.glob(pattern))

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            process_groups.stop(proc, grace=10.0)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    try:
        yield p
    finally:
        p.stop_all()


def scrape_metrics(base_url: str) -> dict[tuple[str, frozenset], float]:
    """The router's /metrics as {(sample name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric_value(base_url: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, lbl), v in scrape_metrics(base_url).items() if n == name and wanted <= lbl)


@pytest.fixture
def metric():
    return metric_value


def wait_until(predicate, timeout: float = 10.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} not met within {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def wait():
    return wait_until


@pytest.fixture
def port() -> int:
    """A free loopback port."""
    return free_port()
