"""Fixtures of the packaging tests: the helm binary and a throwaway helm home."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import chart


@pytest.fixture(scope="session")
def helm_bin() -> str:
    binary = chart.find_helm()
    if not binary:
        pytest.skip(chart.HELM_MISSING)
    return binary


@pytest.fixture(scope="session")
def helm(helm_bin: str, tmp_path_factory: pytest.TempPathFactory) -> chart.Helm:
    return chart.Helm(helm_bin, Path(tmp_path_factory.mktemp("helm-home")))
