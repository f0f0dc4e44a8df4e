"""The node's startup probe, as the kubelet runs it: it gates liveness and readiness."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from modeldeploy_devcluster.node import probes
from modeldeploy_devcluster.node.container import Container, Launch

QUICK = {"periodSeconds": 0.05, "failureThreshold": 2}


def _container(tmp_path: Path, startup: dict, readiness: dict) -> Container:
    spec = {"name": "c", "image": "x"}
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    launch = Launch(argv, dict(os.environ))
    specs = (probes.parse(readiness, "127.0.0.1", {}), None, probes.parse(startup, "127.0.0.1", {}))
    return Container(spec, tmp_path, "Always", lambda: launch, specs, grace=1)


def _tick_for(c: Container, seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        c.tick(time.time())
        time.sleep(0.02)


def test_failing_startup_probe_restarts_and_readiness_never_runs(tmp_path: Path) -> None:
    never = {"exec": {"command": ["false"]}, **QUICK}
    ready = {"exec": {"command": ["true"]}, **QUICK}
    c = _container(tmp_path, never, ready)
    try:
        _tick_for(c, 0.6)
        assert c.restart_count >= 1
        assert not c.ready and not c.status()["started"]
        assert b"startup probe failed" in (tmp_path / "c.log").read_bytes()
    finally:
        c.stop(grace=1)


def test_passing_startup_probe_hands_over_to_readiness(tmp_path: Path) -> None:
    ok = {"exec": {"command": ["true"]}, **QUICK}
    c = _container(tmp_path, ok, ok)
    try:
        _tick_for(c, 0.6)
        assert c.status()["started"] and c.ready
        assert c.restart_count == 0
    finally:
        c.stop(grace=1)
