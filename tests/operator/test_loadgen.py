"""The built-in load generator: request parsing and pod choice (pure), and
its endpoint refusing bad requests on a real loopback server."""

from __future__ import annotations

import socket

import httpx
import pytest
from modeldeploy_operator import health
from modeldeploy_operator.gates import loadspec
from modeldeploy_operator.gates.loadgen import LoadGenerator

BODY = {
    "name": "fraud",
    "namespace": "ns",
    "model": "fraud",
    "revision": "fraud-aaaa",
    "type": "rollout",
    "metadata": {"rate": "20", "duration": "30s", "batch": "4"},
}


def test_webhook_body_becomes_a_job():
    job = loadspec.parse_request(BODY)
    assert job == loadspec.LoadJob("ns", "fraud", "fraud", "fraud-aaaa", 20.0, 30.0, 4)
    assert job.key == ("ns", "fraud-aaaa")
    plain = loadspec.parse_request({**BODY, "metadata": {}})
    assert (plain.rate, plain.duration, plain.batch) == (10.0, 60.0, 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"revision": ""}, "revision: expected a non-empty string"),
        ({"metadata": {"rate": "fast"}}, "metadata.rate: expected a number"),
        ({"metadata": {"rate": "5000"}}, "metadata.rate: expected 0.1 to 1000"),
        ({"metadata": {"duration": "2h"}}, "at most 1h"),
        ({"metadata": {"duration": "soon"}}, "metadata.duration: invalid duration"),
        ({"metadata": {"batch": "1.5"}}, "metadata.batch: expected a whole number"),
        ({"metadata": ["x"]}, "metadata: expected an object"),
    ],
)
def test_bad_requests_name_the_field(change, message):
    with pytest.raises(loadspec.LoadSpecError, match=message):
        loadspec.parse_request({**BODY, **change})


def test_only_ready_running_pods_get_load():
    def pod(ip, ready=True, deleting=False):
        meta = {"deletionTimestamp": "now"} if deleting else {}
        cond = [{"type": "Ready", "status": "True" if ready else "False"}]
        return {"metadata": meta, "status": {"podIP": ip, "conditions": cond}}

    pods = [pod("10.0.0.2"), pod("10.0.0.1"), pod("10.0.0.3", ready=False),
            pod("10.0.0.4", deleting=True), pod("fd00::5")]  # fmt: skip
    assert loadspec.ready_urls(pods, 8080) == [
        "http://10.0.0.1:8080",
        "http://10.0.0.2:8080",
        "http://[fd00::5]:8080",
    ]


def test_batches_cover_every_row():
    assert loadspec.batches([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]


async def test_endpoint_refuses_bad_requests_and_loads_that_cannot_run():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class NoPods:  # the revision has no pod yet (a unit test of the refusal, no cluster)
        async def list_pods(self, namespace: str, revision: str) -> list:
            return []

    loadgen = LoadGenerator(kube=NoPods())  # type: ignore[arg-type]
    runner = await health.start("127.0.0.1", port, loadgen)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            r = await http.post("/loadtest", json={**BODY, "metadata": {"rate": "0"}})
            assert r.status_code == 400
            assert "metadata.rate: expected 0.1 to 1000" in r.json()["error"]
            r = await http.post("/loadtest", content=b"{not json")
            assert r.status_code == 400 and "error" in r.json()
            r = await http.post("/loadtest", json=BODY)
            assert r.status_code == 503
            assert r.json() == {"error": "no Ready pod of fraud-aaaa to send load to"}
            assert (await http.get("/healthz")).status_code == 200
        assert loadgen.loads == {}
    finally:
        await runner.cleanup()
