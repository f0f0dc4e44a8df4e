"""The alert rules pass promtool and every PromQL expression parses and runs.

Evaluation happens on a real Prometheus (the `make binaries` build) started on
loopback with an empty TSDB: the point here is syntax and type errors; the
"returns data during a rollout" check runs on the local cluster.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from modeldeploy_devcluster.pytest_plugin import require_tool

from . import chart, prometheus, promql


@pytest.fixture(scope="module")
def promtool() -> Callable[..., subprocess.CompletedProcess]:
    """promtool as `make binaries` builds it (from the Prometheus module)."""
    binary = str(require_tool("promtool"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)

    return run


@pytest.mark.parametrize(
    "path",
    [promql.ALERTS, chart.CHART / "files" / "alerts.yaml"],
    ids=["docs", "chart"],
)
def test_promtool_check_rules(path: Path, promtool) -> None:
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_queries_are_found() -> None:
    queries = promql.all_queries()
    wheres = [w for w, _ in queries]
    assert len(wheres) == len(set(wheres)), "two queries share a location name"
    # Each asked-for view of the dashboard has a query behind it.
    exprs = "\n".join(e for _, e in promql.dashboard_queries())
    for metric in (
        "modeldeploy_operator_rollouts",
        "modeldeploy_router_canary_weight",
        "modeldeploy_requests_total",
        "modeldeploy_request_duration_seconds_bucket",
        "modeldeploy_feature_drift_psi",
        "modeldeploy_prediction_drift_psi",
        "modeldeploy_router_shadow_agreements_total",
        "modeldeploy_operator_rollbacks_total",
    ):
        assert metric in exprs, metric


def test_unknown_grafana_variable_is_an_error() -> None:
    with pytest.raises(KeyError, match=r"\$cluster"):
        promql.expand('up{cluster=~"$cluster"}')


def test_every_query_parses(tmp_path: Path, promtool) -> None:
    queries = promql.all_queries()
    path = tmp_path / "queries.yaml"
    path.write_text(promql.as_rule_file(queries))
    proc = promtool("check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # promtool counts what it parsed: nothing was silently dropped.
    assert f"SUCCESS: {len(queries)} rules found" in proc.stdout


def test_a_broken_query_is_caught(tmp_path: Path, promtool) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(promql.as_rule_file([("x", "sum by (a (rate(x[1m]))")]))
    assert promtool("check", "rules", str(path)).returncode != 0


@pytest.mark.slow
def test_every_query_evaluates_on_prometheus(tmp_path: Path) -> None:
    with prometheus.loopback(tmp_path) as url:
        failures = []
        for where, expr in promql.all_queries():
            rsp = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
            body = rsp.json()
            if rsp.status_code != 200 or body.get("status") != "success":
                failures.append(f"{where}: {body.get('error', rsp.text)}\n  {expr}")
        assert not failures, "\n".join(failures)


def test_dashboard_layout_is_sound() -> None:
    dash = json.loads(promql.DASHBOARD.read_text())
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["description"], p["title"]
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "namespace", "model"} <= names


def test_live_required_queries_exist() -> None:
    wheres = {w for w, _ in promql.all_queries()}
    assert set(promql.LIVE_CANARY_NON_EMPTY) <= wheres
    assert "rule ModelDeploymentRolledBack" in wheres
