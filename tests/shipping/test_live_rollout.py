"""The chart's operator pod runs a real canary and rollback; dashboard queries see it.

On the local cluster the chart's Deployment runs the operator as a pod with
the chart's ServiceAccount token (the node hands pods their credentials, and
the API server enforces RBAC), scraped by the cluster's Prometheus through
its pod annotations. The rollout itself (bundles, manifests, load through the
router) comes from the operator tests' helper module (tests/operator/dataplane.py),
shared, not copied.

Proves: the chart's RBAC suffices for a canary and its automatic rollback;
every dashboard/alert expression evaluates on the live Prometheus, and the
ones that must have data during such a rollout do.
"""

from __future__ import annotations

import os

import dataplane as dp
import httpx
import pytest
from cluster_helpers import Env
from faulty_models import FailsOnShare
from sklearn import linear_model

from . import chart, promql, scenario

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

OPERATOR_TESTS = chart.REPO / "tests" / "operator"


def _query(url: str, expr: str) -> list:
    rsp = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = rsp.json()
    assert rsp.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


@pytest.mark.timeout(900)
def test_chart_operator_canary_rollback_and_live_queries(
    cluster,
    namespace: str,
    kube: scenario.Kube,
    cluster_helm: chart.Helm,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `modeldeploy-predictor bundle` unpickles the faulty model: it needs its module.
    path = os.pathsep.join(p for p in (str(OPERATOR_TESTS), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)

    release = scenario.release_name()
    values = scenario.namespaced_values(
        [namespace],
        replicaCount=1,
        tick=0.5,
        logFormat="plain",
        **{"prometheus.url": cluster.prometheus_url},
    )
    scenario.install(cluster_helm, release, namespace, values)
    try:
        _rollout(cluster, namespace, kube, release, tmp_path)
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc}\n{_diagnostics(cluster, kube, namespace, release)}") from exc
    finally:
        kube.run("delete", "md", "--all", "-n", namespace, "--timeout=120s", check=False)
        cluster_helm.run("uninstall", release, "--namespace", namespace, check=False)


def _diagnostics(cluster, kube: scenario.Kube, namespace: str, release: str) -> str:
    """Pods and their logs (the operator's longest), for a failure message that says why."""
    pods = kube.run("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
    names = kube.run("get", "pods", "-n", namespace, "-o", "name", check=False).stdout.split()
    logs = []
    for pod in (n.split("/")[1] for n in names):
        keep = 4000 if pod.startswith(f"{release}-") else 1500
        try:
            logs.append(f"--- log of {pod}\n{cluster.logs(pod, namespace)[-keep:]}")
        except Exception as exc:  # diagnostics only: never hide the real failure
            logs.append(f"--- no log for {pod}: {exc}")
    return f"--- pods\n{pods}\n" + "\n".join(logs)


def _rollout(cluster, namespace: str, kube: scenario.Kube, release: str, tmp_path) -> None:
    """v1 served, then a v2 failing ~20% of requests under load: canary, then rollback."""

    kube.run(
        "rollout", "status", f"deployment/{release}-modeldeploy", "-n", namespace,
        "--timeout=180s", timeout=200,
    )  # fmt: skip
    env = Env(cluster, namespace, cluster.prometheus_url)  # no operator process of its own
    # Three failed runs before the rollback keep the failing candidate ~18 s in
    # Prometheus: its model-error series is born with its first exception, and
    # rate() needs two scrapes of it after that (one failed run was ~6 s).
    analysis = {**dp.analysis({"name": "error-rate", "max": 0.05}), "failureLimit": 3}
    strategy = {**dp.CANARY, "analysis": analysis}
    dp.serve_v1(env, tmp_path, strategy)
    faulty = FailsOnShare(linear_model.LogisticRegression(), threshold=0.8)
    faulty.fit(dp.X, dp.Y)
    v2 = dp.make_bundle(tmp_path, "2.0.0", faulty, dp.X)
    prom = cluster.prometheus_url
    queries = dict(promql.all_queries({"$namespace": namespace, "$model": "fraud"}))
    with dp.router(env) as url, dp.Load(url):
        env.apply(dp.manifest("2.0.0", v2, strategy))
        env.wait_status(lambda s: s.get("phase") == "Canary", "canary started", timeout=120)
        for expr in queries.values():
            _query(prom, expr)  # every one parses and evaluates on live data
        missing = set(promql.LIVE_CANARY_NON_EMPTY)

        def all_have_data() -> bool:
            for where in sorted(missing):
                if _query(prom, queries[where]):
                    missing.discard(where)
            return not missing

        try:
            scenario.wait_for(all_have_data, 120, "dashboard data", interval=2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still empty: {sorted(missing)}") from exc
        dp.rolled_back(env, "error-rate")
    rolled_back = queries["rule ModelDeploymentRolledBack"]
    scenario.wait_for(
        lambda: _query(prom, rolled_back), 60, "the RolledBack alert expression", interval=2
    )
