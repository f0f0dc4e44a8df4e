"""A throwaway Prometheus on loopback with an empty TSDB, for query checks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from modeldeploy_devcluster import procs
from modeldeploy_devcluster.pytest_plugin import require_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def loopback(workdir: Path, timeout: float = 60) -> Iterator[str]:
    """Start Prometheus, yield its URL once ready, stop its process group."""
    binary = str(require_tool("prometheus"))
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    url = f"http://127.0.0.1:{free_port()}"
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address={url.removeprefix('http://')}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                output = (workdir / "prometheus.log").read_text()
                raise RuntimeError(f"prometheus exited {proc.returncode}: {output}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("prometheus did not become ready")
            time.sleep(0.2)
        yield url
    finally:
        procs.stop(proc, grace=15.0)
        log.close()
