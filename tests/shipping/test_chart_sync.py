"""The chart's copies of single-source files equal their sources.

`hack/sync-crd.sh` makes the copies; these tests fail when someone edits one
side only.
"""

from __future__ import annotations

import subprocess

import pytest

from . import chart

PAIRS = [
    ("crds/modeldeploy.io_modeldeployments.yaml", "crds/modeldeploy.io_modeldeployments.yaml"),
    ("docs/grafana/modeldeploy.json", "files/dashboards/modeldeploy.json"),
    ("docs/prometheus/alerts.yaml", "files/alerts.yaml"),
]


@pytest.mark.parametrize(("source", "copy"), PAIRS, ids=[p[0] for p in PAIRS])
def test_chart_copy_is_byte_equal(source: str, copy: str) -> None:
    src = chart.REPO / source
    dst = chart.CHART / copy
    assert dst.exists(), f"{dst} missing: run hack/sync-crd.sh"
    assert dst.read_bytes() == src.read_bytes(), f"{dst} is stale: run hack/sync-crd.sh"


def test_sync_script_check_mode_agrees() -> None:
    proc = subprocess.run(
        ["bash", str(chart.REPO / "hack" / "sync-crd.sh"), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
