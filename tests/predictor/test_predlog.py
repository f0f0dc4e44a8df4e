"""The prediction log never blocks a request: a stuck writer means counted drops."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
from modeldeploy_predictor.predlog import PredictionLog


class StuckStream(io.BytesIO):
    """A stream whose writes block until released (a full pipe, a hung disk)."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def write(self, data):
        self.release.wait(30)
        return super().write(data)

    def close(self):  # keep the buffer readable after PredictionLog.close
        pass


def test_full_buffer_drops_and_counts_instead_of_blocking():
    stream = StuckStream()
    drops = []
    plog = PredictionLog("test", capacity=2, on_drop=lambda: drops.append(1), stream=stream)
    for i in range(10):  # returns at once although the writer is stuck
        plog.write({"request_id": str(i), "inputs": np.array([[1.0, 2.0]])})
    assert plog.dropped == len(drops) >= 7
    stream.release.set()
    plog.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 10 - plog.dropped
    assert lines[0]["request_id"] == "0" and lines[0]["inputs"] == [[1.0, 2.0]]


def test_file_target_appends_json_lines(tmp_path):
    target = tmp_path / "log.jsonl"
    plog = PredictionLog(str(target))
    plog.write({"request_id": "a", "outputs": np.array([1, 0])})
    plog.close()
    assert json.loads(target.read_text()) == {"request_id": "a", "outputs": [1, 0]}
