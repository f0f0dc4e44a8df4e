"""Ground-truth feedback in the predictor: the pure memory/judge, then a real server."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from modeldeploy_predictor import feedback
from modeldeploy_predictor.feedback import Outcome, PredictionMemory, parse_outcomes


def v2_body(x: np.ndarray) -> dict:
    data = {"name": "input-0", "shape": list(x.shape), "datatype": "FP64", "data": x.tolist()}
    return {"inputs": [data]}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_parse_single_batch_and_header_id():
    assert parse_outcomes({"request_id": "a", "label": 1}) == [Outcome("a", [1])]
    assert parse_outcomes({"label": [0, 1]}, header_id="h") == [Outcome("h", [0, 1])]
    many = parse_outcomes(
        {"outcomes": [{"request_id": "a", "label": "x"}, {"request_id": "b", "label": 2.5}]}
    )
    assert [o.request_id for o in many] == ["a", "b"]


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"label": 1}, "body.request_id"),
        ({"request_id": "a"}, "body.label: missing"),
        ({"request_id": "a", "label": []}, "empty list"),
        ({"outcomes": []}, "non-empty list"),
        ({"outcomes": [{"request_id": "a", "label": 1}, 3]}, "outcomes[1]"),
        ({"outcomes": [{"request_id": "a", "label": 1}] * 1001}, "at most 1000"),
        ([1, 2], "expected an object"),
    ],
)
def test_parse_refuses_with_the_field_named(doc, message):
    with pytest.raises(
        feedback.FeedbackError, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        parse_outcomes(doc)


def test_classifier_outcomes_counted_once_and_forgotten():
    mem = PredictionMemory(10, 60.0, 100)
    mem.remember("a", np.array([0, 1, 1]))
    mem.remember("b", np.array(["cat"]))
    judged = mem.judge(Outcome("a", [0, 0, 1]), classifier=True)
    assert (judged.result, judged.rows, judged.correct) == ("recorded", 3, 2)
    assert mem.judge(Outcome("a", [0, 0, 1]), classifier=True).result == "unknown"
    assert mem.judge(Outcome("b", ["cat"]), classifier=True).correct == 1


def test_invalid_outcome_keeps_the_prediction():
    mem = PredictionMemory(10, 60.0, 100)
    mem.remember("r", np.array([1.5, 2.0]))
    bad = mem.judge(Outcome("r", [1.0]), classifier=False)
    assert bad.result == "invalid" and "1 label(s) for a prediction of 2 row(s)" in bad.error
    assert mem.judge(Outcome("r", [1.0, "x"]), classifier=False).result == "invalid"
    good = mem.judge(Outcome("r", [1.0, 3.0]), classifier=False)
    assert good.result == "recorded" and good.abs_error == pytest.approx(1.5)


def test_memory_is_bounded_by_count_age_and_rows():
    clock, evicted = Clock(), []
    mem = PredictionMemory(2, 10.0, 3, 4, on_evict=lambda r, n: evicted.append((r, n)), clock=clock)
    assert mem.remember("big", np.zeros(4)) == "too_many_rows"
    assert mem.remember("x" * 257, np.zeros(1)) == "id_too_long"
    for rid in "abc":
        assert mem.remember(rid, np.zeros(1)) is None
    assert len(mem) == 2 and evicted == [("full", 1)] and mem.rows == 2
    assert mem.take("a") is None
    mem.remember("d", np.zeros(3))  # 5 rows kept > 4: the oldest goes
    assert list(mem._items) == ["c", "d"] and mem.rows == 4 and evicted[-1] == ("full", 1)
    mem.remember("e", np.zeros(1))
    clock.now = 10.0
    assert mem.take("e") is None and evicted[-1] == ("expired", 2)
    assert len(mem) == 0 and mem.rows == 0
    assert PredictionMemory(0, 10.0, 3).remember("a", np.zeros(1)) == "off"


def test_server_judges_outcomes_of_its_own_predictions(serve, classifier_bundle, cancer, helpers):
    metric = helpers.metric
    x, y, _ = cancer
    env = {"MODELDEPLOY_TRACK": "canary", "MODELDEPLOY_REVISION": "rev-fb"}
    with serve(classifier_bundle, env=env) as server:
        url = server.url + "/v2/models/cancer/"
        r = httpx.post(url + "infer", json=v2_body(x[:4]), headers={"x-request-id": "req-1"})
        predicted = r.json()["outputs"][0]["data"]
        r2 = httpx.post(url + "infer", json=v2_body(x[4:5]))
        own_id = r2.headers["x-request-id"]
        wrong = [1 - p for p in predicted[:1]] + predicted[1:]  # one of four wrong
        r = httpx.post(
            url + "feedback",
            json={
                "outcomes": [
                    {"request_id": "req-1", "label": wrong},
                    {"request_id": "nope", "label": 1},
                ]
            },
        )
        assert r.status_code == 200, r.text
        assert r.json() == {
            "recorded": 1,
            "outcomes": [
                {"request_id": "req-1", "result": "recorded"},
                {"request_id": "nope", "result": "unknown"},
            ],
        }
        r = httpx.post(
            url + "feedback", json={"label": int(y[4])}, headers={"x-request-id": own_id}
        )
        assert r.json()["recorded"] == 1
        r = httpx.post(url + "feedback", json={"request_id": "x"})
        assert r.status_code == 400 and "label" in r.json()["error"]
        assert httpx.post(server.url + "/v2/models/other/feedback", json={}).status_code == 404
        text = httpx.get(server.url + "/metrics").text
        labels = {"model": "cancer", "revision": "rev-fb", "track": "canary"}
        assert metric(text, "modeldeploy_feedback_outcomes_total", **labels) == 5
        correct = 3 + int(r2.json()["outputs"][0]["data"][0] == y[4])
        assert metric(text, "modeldeploy_feedback_correct_total", **labels) == correct


def test_server_regressor_absolute_error(serve, regressor_bundle, regression_data, helpers):
    metric = helpers.metric
    x, _, _ = regression_data
    with serve(regressor_bundle) as server:
        url = server.url + "/v2/models/reg/"
        r = httpx.post(url + "infer", json=v2_body(x[:2]), headers={"x-request-id": "r"})
        pred = r.json()["outputs"][0]["data"]
        r = httpx.post(
            url + "feedback", json={"request_id": "r", "label": [pred[0] + 2, pred[1] - 1]}
        )
        assert r.json()["recorded"] == 1
        text = httpx.get(server.url + "/metrics").text
        assert metric(text, "modeldeploy_feedback_absolute_error_total") == pytest.approx(3.0)
        assert metric(text, "modeldeploy_feedback_outcomes_total") == 2
