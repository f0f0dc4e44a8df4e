"""Ground-truth feedback through the router: the merge rules, then real
predictor processes (stable, two canary pods, a shadow) behind two router
replicas, with predictions sent through one replica and their outcomes
through the other."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from modeldeploy_predictor.bundle import build_bundle
from modeldeploy_router import feedback
from modeldeploy_router.upstream import Buffered, UpstreamError
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.router.conftest import free_port

PREDICTOR = Path(sys.executable).with_name("modeldeploy-predictor")


def _reply(status: int, body: bytes) -> Buffered:
    return Buffered(status, [], body, 0.01)


def test_merge_takes_the_pod_that_knew_the_id():
    stable = {
        "outcomes": [
            {"request_id": "a", "result": "unknown"},
            {"request_id": "b", "result": "recorded"},
        ]
    }
    canary = {
        "outcomes": [
            {"request_id": "a", "result": "invalid", "error": "2 label(s) for 1 row(s)"},
            {"request_id": "b", "result": "unknown"},
        ]
    }
    shadow = {
        "outcomes": [
            {"request_id": "a", "result": "unknown"},
            {"request_id": "b", "result": "recorded"},
        ]
    }
    merged = feedback.merge([("stable", stable), ("canary", canary), ("shadow", shadow)])
    assert merged == [
        {"request_id": "a", "result": "invalid", "error": "2 label(s) for 1 row(s)"},
        {"request_id": "b", "result": "recorded", "tracks": ["stable", "shadow"]},
    ]


def test_combine_passes_client_errors_and_lists_failed_pods():
    bad = _reply(400, b'{"error": "body.label: missing", "reason": "bad_feedback"}')
    assert feedback.combine([("stable", "u1", bad)]) == (
        400,
        {"error": "body.label: missing", "reason": "bad_feedback"},
    )
    ok = _reply(200, b'{"recorded": 1, "outcomes": [{"request_id": "a", "result": "recorded"}]}')
    status, doc = feedback.combine(
        [("stable", "u1", ok), ("canary", "u2", UpstreamError("u2: refused"))]
    )
    assert status == 200 and doc["recorded"] == 1
    assert doc["errors"] == [{"track": "canary", "endpoint": "u2", "error": "u2: refused"}]
    status, doc = feedback.combine([("stable", "u1", _reply(503, b"{}"))])
    assert status == 502 and doc["errors"][0]["error"] == "answered 503"
    assert feedback.combine([])[0] == 503


@pytest.fixture(scope="module")
def iris_bundles(tmp_path_factory):
    x, y = load_iris(return_X_y=True)
    names = ["sl", "sw", "pl", "pw"]
    good = LogisticRegression(max_iter=500).fit(x, y)
    root = tmp_path_factory.mktemp("bundles")
    return x, y, build_bundle(good, x, "iris", "1", root / "iris", feature_names=names)


def _predictor(procs, bundle: Path, track: str, revision: str) -> str:
    port = free_port()
    cmd = [str(PREDICTOR), "serve", "--bundle", str(bundle), "--host", "127.0.0.1",
           "--port", str(port), "--track", track, "--revision", revision]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    procs._start(cmd, url + "/v2/health/ready", f"predictor-{track}-{port}")
    return url


def test_outcomes_reach_the_pod_that_predicted_through_another_router(
    procs, metric, wait, iris_bundles
):
    x, y, bundle = iris_bundles
    stable = _predictor(procs, bundle, "stable", "rev-s")
    canaries = [_predictor(procs, bundle, "canary", "rev-c") for _ in range(2)]
    shadow = _predictor(procs, bundle, "shadow", "rev-h")
    backends = [f"--backend=stable={stable}", *(f"--backend=canary={u}" for u in canaries),
                f"--shadow={shadow}"]  # fmt: skip
    router_a = procs.router(*backends, "--weight=50", "--mirror-percent=100")
    router_b = procs.router(*backends, "--weight=50")
    infer = "/v2/models/iris/infer"
    outcomes, tracks, correct = [], [], 0
    for i in range(0, 40, 2):
        rows = x[i * 3 : i * 3 + 2]
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2, 4],
                    "datatype": "FP64",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
        r = httpx.post(router_a + infer, json=body)
        assert r.status_code == 200, r.text
        tracks.append(r.headers["x-modeldeploy-track"])
        labels = y[i * 3 : i * 3 + 2].tolist()
        correct += sum(p == t for p, t in zip(r.json()["outputs"][0]["data"], labels, strict=True))
        outcomes.append({"request_id": r.headers["x-request-id"], "label": labels})
    assert set(tracks) == {"stable", "canary"}
    # mirrored copies carry the request id: the shadow remembers its own predictions
    wait(
        lambda: metric(shadow, "modeldeploy_requests_total", endpoint="v2_infer") == 20,
        message="the shadow answered every copy",
    )
    outcomes.append({"request_id": "never-predicted", "label": 0})
    r = httpx.post(router_b + "/v2/models/iris/feedback", json={"outcomes": outcomes})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["recorded"] == 20 and "errors" not in doc
    assert [o["tracks"] for o in doc["outcomes"][:-1]] == [[t, "shadow"] for t in tracks]
    assert metric(shadow, "modeldeploy_feedback_outcomes_total") == 40
    assert doc["outcomes"][-1] == {"request_id": "never-predicted", "result": "unknown"}
    # each pod counted only its own predictions: 2 rows per request
    per_pod = {u: metric(u, "modeldeploy_feedback_outcomes_total") for u in [stable, *canaries]}
    assert per_pod[stable] == 2 * tracks.count("stable")
    assert per_pod[canaries[0]] + per_pod[canaries[1]] == 2 * tracks.count("canary")
    assert metric(router_b, "modeldeploy_router_feedback_outcomes_total", result="recorded") == 20
    assert metric(router_b, "modeldeploy_router_feedback_outcomes_total", result="unknown") == 1
    # sent again: every id was judged once and forgotten, nothing is counted twice
    again = httpx.post(
        router_a + "/v2/models/iris/feedback", json={"outcomes": outcomes[:3]}
    ).json()
    assert again["recorded"] == 0
    # a single outcome named by the header, and a malformed body named back
    r = httpx.post(
        router_a + infer,
        json={
            "inputs": [
                {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": x[0].tolist()}
            ]
        },
        headers={"x-request-id": "mine"},
    )
    mine = r.json()["outputs"][0]["data"][0]
    r = httpx.post(
        router_b + "/v2/models/iris/feedback",
        json={"label": int(y[0])},
        headers={"x-request-id": "mine"},
    )
    assert r.json()["recorded"] == 1
    r = httpx.post(router_b + "/v2/models/iris/feedback", json={"request_id": "mine"})
    assert r.status_code == 400 and "label" in r.json()["error"]
    pods = [stable, *canaries]
    right = sum(metric(u, "modeldeploy_feedback_correct_total") for u in pods)
    assert right == correct + int(mine == y[0])
