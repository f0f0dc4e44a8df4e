"""pytest fixtures for the local cluster (registered as a pytest11 plugin).

* ``cluster`` (session): a :class:`~modeldeploy_devcluster.cluster.Cluster`
  started once per session in a temp dir and stopped at the end, or the
  cluster named by ``MODELDEPLOY_KUBECONFIG`` (+ ``MODELDEPLOY_PROMETHEUS_URL``)
  for a fast dev loop against ``modeldeploy-devcluster up``.
* ``namespace`` (function): a fresh namespace, deleted afterwards.

When the cluster cannot start because a prerequisite is missing (no binaries,
no Prometheus) the tests that need it are skipped loudly; under ``CI=true``
that is a failure instead.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from modeldeploy_devcluster import binaries, launcher
from modeldeploy_devcluster.cluster import Cluster

_SKIPPED: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> Path:
    """The built tool `name` (see binaries.tool); a missing one skips only without Go.

    With Go on PATH `make binaries` can build it, so its absence is a failure
    naming the command; under ``CI=true`` it always is.
    """
    found = binaries.tool(name)
    if found is not None:
        return found
    reason = f"{name} not found in the binaries cache or on PATH: run `make binaries`"
    if shutil.which("go"):
        pytest.fail(f"{reason} (Go is installed)", pytrace=False)
    missing_tool(f"{reason} (needs Go)")


def missing_tool(reason: str) -> NoReturn:
    """Skip a test for a missing external tool; under ``CI=true`` fail instead."""
    if _in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if kubeconfig := os.environ.get("MODELDEPLOY_KUBECONFIG"):
        yield Cluster.from_kubeconfig(
            Path(kubeconfig), os.environ.get("MODELDEPLOY_PROMETHEUS_URL")
        )
        return
    # Short path: the state dir ends up in process arguments and socket paths.
    root = Path(tempfile.mkdtemp(prefix="mddc-")) / "cluster"
    try:
        started = launcher.up(
            root,
            scrape_interval=os.environ.get("MODELDEPLOY_SCRAPE_INTERVAL", "2s"),
            owner_pid=os.getpid(),
        )
    except binaries.BinariesMissing as exc:
        shutil.rmtree(root.parent, ignore_errors=True)
        reason = f"local cluster unavailable: {exc}"
        if _in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        _SKIPPED.append(reason)
        pytest.skip(reason)
    except launcher.ClusterStartError as exc:
        # Binaries present but the cluster broke: that is a bug, never a skip.
        launcher.down(root, keep=True)
        pytest.fail(f"local cluster failed to start (state kept in {root}):\n{exc}", pytrace=False)
    try:
        yield started
    finally:
        launcher.down(root)
        shutil.rmtree(root.parent, ignore_errors=True)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    from kubernetes import client

    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base or 't'}-{uuid.uuid4().hex[:5]}"
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespace({"metadata": {"name": name, "labels": {"modeldeploy.io/test": "true"}}})
    try:
        yield name
    finally:
        # The namespace controller removes what is inside, the node stops the pods.
        core.delete_namespace(name)


def pytest_terminal_summary(terminalreporter) -> None:
    if _SKIPPED:
        terminalreporter.section("LOCAL CLUSTER NOT AVAILABLE", sep="!", red=True, bold=True)
        terminalreporter.write_line(f"cluster tests were SKIPPED: {_SKIPPED[0]}", red=True)
