"""The node's wildcard-bind shim, preloaded into a real process (needs a C compiler)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from modeldeploy_devcluster.node import bindshim
from modeldeploy_devcluster.pytest_plugin import missing_tool

BIND = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
print(s.getsockname()[0])
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (shutil.which("cc") or shutil.which("gcc")):
        missing_tool("no C compiler (gcc): make system-deps")
    return bindshim.ensure(tmp_path_factory.mktemp("shim"))


def _bound(shim: Path, address: str, pod_ip: str = "127.0.0.42") -> str:
    env = bindshim.preload_env(dict(os.environ), shim, pod_ip)
    out = subprocess.run(
        [sys.executable, "-c", BIND, address], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_wildcard_bind_lands_on_the_pod_address(shim: Path) -> None:
    assert _bound(shim, "0.0.0.0") == "127.0.0.42"


def test_explicit_address_passes_through(shim: Path) -> None:
    assert _bound(shim, "127.0.0.1") == "127.0.0.1"


def test_compiled_once_per_source(shim: Path) -> None:
    before = shim.stat().st_mtime_ns
    assert bindshim.ensure(shim.parent) == shim
    assert shim.stat().st_mtime_ns == before


def test_container_preload_is_kept_after_the_shim() -> None:
    env = bindshim.preload_env({"LD_PRELOAD": "/x/own.so"}, Path("/c/shim.so"), "127.0.0.5")
    assert env["LD_PRELOAD"] == "/c/shim.so /x/own.so"
    assert env[bindshim.POD_IP_ENV] == "127.0.0.5"
