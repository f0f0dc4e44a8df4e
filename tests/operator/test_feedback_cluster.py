"""Ground-truth feedback end to end: real predictor and router pods, real
Prometheus. Users send predictions through the router, then the true labels
to the router's feedback endpoint; a canary that is as healthy as stable on
errors and drift but wrong on the labels is rolled back on `accuracy`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from cluster_helpers import Env
from dataplane import (
    FEATURES,
    Load,
    X,
    analysis,
    fitted,
    make_bundle,
    manifest,
    operator_env,
    rolled_back,
    router,
    serve_v1,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CANARY = {"type": "Canary", "canary": {"steps": [{"weight": 50, "pause": "60s"}]}}


def truth(rows: np.ndarray) -> np.ndarray:
    return (rows[:, 0] + rows[:, 1] > 0).astype(int)


class FeedbackLoad(Load):
    """Single-row predictions through the router; every few, their true labels
    as one batch of outcomes (what a client learns shortly after)."""

    def __init__(self, url: str, rate: float = 25.0, batch: int = 5) -> None:
        super().__init__(url, rate)
        self.batch = batch
        self.recorded: dict[str, int] = {}  # track -> outcomes the router says were recorded
        self.feedback_codes: list[int] = []

    def _run(self) -> None:
        rng = np.random.default_rng(13)
        pending: list[tuple[str, dict]] = []
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self._stop.wait(self.period):
                row = rng.normal(size=2)
                try:
                    r = http.post("/predict", json=[dict(zip(FEATURES, row.tolist(), strict=True))])
                except httpx.HTTPError:
                    self.codes[-1] += 1
                    continue
                self.codes[r.status_code] += 1
                if r.status_code != 200:
                    continue
                self.versions[r.json()["version"]] += 1
                label = int(truth(row[None, :])[0])
                pending.append(
                    (
                        r.headers["x-modeldeploy-track"],
                        {"request_id": r.headers["x-request-id"], "label": label},
                    )
                )
                if len(pending) >= self.batch:
                    self._send(http, pending)
                    pending = []

    def _send(self, http: httpx.Client, pending: list[tuple[str, dict]]) -> None:
        try:
            r = http.post("/v2/models/fraud/feedback", json={"outcomes": [o for _, o in pending]})
        except httpx.HTTPError:
            self.feedback_codes.append(-1)
            return
        self.feedback_codes.append(r.status_code)
        if r.status_code == 200:
            for (track, _), out in zip(pending, r.json()["outcomes"], strict=True):
                if out["result"] == "recorded":
                    self.recorded[track] = self.recorded.get(track, 0) + 1


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    yield from operator_env(cluster, namespace)


def test_a_canary_wrong_on_true_labels_is_rolled_back_on_accuracy(env, tmp_path):
    strategy = {
        **CANARY,
        "analysis": analysis(
            {"name": "error-rate", "max": 0.05},
            {"name": "prediction-drift", "max": 0.2},
            {"name": "accuracy", "min": 0.85, "minSamples": 10},
        ),
    }
    serve_v1(env, tmp_path, strategy)
    # Same inputs, same class balance as v1 (no drift, no errors), but the
    # boundary is turned by 90 degrees: right on about half the rows only.
    turned = (X[:, 0] - X[:, 1] > 0).astype(int)
    v2 = make_bundle(tmp_path, "2.0.0", fitted(X, turned), X)
    with router(env) as url, FeedbackLoad(url) as load:
        env.apply(manifest("2.0.0", v2, strategy))
        st = rolled_back(env, "accuracy")
    assert set(load.feedback_codes) == {200}, load.feedback_codes
    assert load.recorded.get("canary", 0) >= 10, load.recorded
    by_metric: dict[str, list[dict]] = {}
    for m in st["analysis"]["measurements"]:
        by_metric.setdefault(m["metric"], []).append(m)
    failed = [m for m in by_metric["accuracy"] if m["verdict"] == "Fail"]
    assert failed and all(m["value"] < 0.85 for m in failed), by_metric["accuracy"]
    for healthy in ("error-rate", "prediction-drift"):
        assert all(m["verdict"] != "Fail" for m in by_metric[healthy]), by_metric[healthy]
