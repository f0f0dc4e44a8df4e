"""The kind e2e's own tests: they run only inside `make e2e-kind`.

hack/e2e-kind.sh creates the cluster (with Prometheus and the S3 store),
exports its admin kubeconfig as MODELDEPLOY_E2E_KUBECONFIG and the store's
URLs as DEMO_S3_UPLOAD_URL / DEMO_S3_CLUSTER_URL, then runs `pytest -m kind`.
Elsewhere these tests are deselected (not skipped): their CI stage is e2e-kind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shipping import chart, scenario

KUBECONFIG_ENV = "MODELDEPLOY_E2E_KUBECONFIG"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(KUBECONFIG_ENV):
        return
    kind = [i for i in items if i.get_closest_marker("kind")]
    if kind:
        config.hook.pytest_deselected(items=kind)
        items[:] = [i for i in items if not i.get_closest_marker("kind")]


@pytest.fixture(scope="session")
def kind_kubeconfig() -> str:
    return os.environ[KUBECONFIG_ENV]


@pytest.fixture(scope="session")
def kube(kind_kubeconfig: str) -> scenario.Kube:
    return scenario.Kube(kind_kubeconfig)


@pytest.fixture
def kind_helm(kind_kubeconfig: str, tmp_path: Path) -> chart.Helm:
    binary = chart.find_helm()
    assert binary, chart.HELM_MISSING
    return chart.Helm(binary, tmp_path / "helm-home", kubeconfig=kind_kubeconfig)


@pytest.fixture
def restricted_namespace(kube: scenario.Kube) -> Iterator[str]:
    """A fresh namespace where the API server enforces the restricted Pod Security Standard."""
    name = kube.create_namespace("kind-e2e")
    kube.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    yield name
    kube.delete_namespace(name)
