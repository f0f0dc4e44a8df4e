"""The supervisor stops and starts control-plane components on request (chaos tests)."""

from __future__ import annotations

import httpx
import pytest
import urllib3
from kubernetes import client
from modeldeploy_devcluster.cluster import ControlError
from modeldeploy_devcluster.state import Layout, State

pytestmark = pytest.mark.cluster


def _api_answers(api: client.ApiClient) -> bool:
    try:
        client.CoreV1Api(api).list_namespace(_request_timeout=2, limit=1)
    except (urllib3.exceptions.HTTPError, OSError):
        return False
    return True


def test_kube_apiserver_stopped_refuses_and_comes_back_with_its_data(cluster, namespace):
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "kept"}, "data": {"a": "1"}})
    with cluster.component_down("kube-apiserver"):
        assert not _api_answers(cluster.api_client())
        assert "kube-apiserver" in State.load(Layout(cluster.root)).held
    state = State.load(Layout(cluster.root))
    assert state.held == [] and state.restarts["kube-apiserver"] >= 1
    assert "kube-apiserver exited" not in state.error  # asked for, not a crash
    assert core.read_namespaced_config_map("kept", namespace).data == {"a": "1"}


def test_prometheus_wiped_comes_back_empty(cluster):
    ready = f"{cluster.prometheus_url}/-/ready"
    marker = Layout(cluster.root).prometheus_data / "chaos-marker"
    marker.write_text("from before the wipe")
    cluster.stop_component("prometheus", wipe_data=True)
    try:
        with pytest.raises(httpx.HTTPError):
            httpx.get(ready, timeout=2)
    finally:
        cluster.start_component("prometheus")
    assert httpx.get(ready, timeout=5).status_code == 200
    assert not marker.exists()  # a new, empty data directory
    answer = httpx.get(f"{cluster.prometheus_url}/api/v1/query", params={"query": "1"}, timeout=5)
    assert answer.json()["status"] == "success"


def test_bad_requests_are_refused_with_a_reason(cluster):
    with pytest.raises(ControlError, match="cannot be stopped"):
        cluster.stop_component("node")
    with pytest.raises(ControlError, match="is running"):
        cluster.start_component("kube-scheduler")
    with pytest.raises(ControlError, match="only Prometheus"):
        cluster.stop_component("kube-scheduler", wipe_data=True)
    assert State.load(Layout(cluster.root)).held == []  # a refused request stops nothing
