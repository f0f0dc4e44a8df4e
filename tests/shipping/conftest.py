"""Fixtures of the packaging tests: helm, and the cluster the chart goes into.

Cluster tests run on the local cluster (fixture `cluster` from the
modeldeploy_devcluster pytest plugin), or on any cluster whose admin
kubeconfig is in MODELDEPLOY_E2E_KUBECONFIG (hack/e2e-kind.sh does that).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from modeldeploy_devcluster.pytest_plugin import require_tool

from . import chart, scenario

# The live-rollout test shares the operator tests' data-plane helper modules
# (dataplane.py, cluster_helpers.py, faulty_models.py), which import each other by name.
sys.path.insert(0, str(chart.REPO / "tests" / "operator"))


@pytest.fixture(scope="session")
def helm_bin() -> str:
    return str(require_tool("helm"))


@pytest.fixture(scope="session")
def helm(helm_bin: str, tmp_path_factory: pytest.TempPathFactory) -> chart.Helm:
    return chart.Helm(helm_bin, Path(tmp_path_factory.mktemp("helm-home")))


@pytest.fixture
def admin_kubeconfig(request: pytest.FixtureRequest) -> str:
    external = os.environ.get("MODELDEPLOY_E2E_KUBECONFIG")
    if external:
        return external
    # The local cluster (modeldeploy_devcluster's plugin, always installed).
    return str(request.getfixturevalue("cluster").kubeconfig)


@pytest.fixture
def kube(admin_kubeconfig: str) -> scenario.Kube:
    return scenario.Kube(admin_kubeconfig)


@pytest.fixture
def cluster_helm(helm_bin: str, admin_kubeconfig: str, tmp_path: Path) -> chart.Helm:
    return chart.Helm(helm_bin, tmp_path / "helm-home", kubeconfig=admin_kubeconfig)


@pytest.fixture
def namespaces(kube: scenario.Kube) -> Iterator[list[str]]:
    """Three fresh namespaces (two to watch, one not), deleted afterwards."""
    made = [kube.create_namespace(p) for p in ("pkg-system", "pkg-team", "pkg-other")]
    yield made
    for ns in made:
        kube.delete_namespace(ns)
