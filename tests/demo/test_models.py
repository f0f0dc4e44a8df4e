"""The demo's models: v2 at least as good as v1, v3 drifts, v4 disagrees; real bundles."""

from __future__ import annotations

import json

import numpy as np
from modeldeploy_predictor import bundle

from demo import models


def test_versions_tell_the_story(tmp_path):
    v1, v2, v3, v4, v5 = models.train()
    assert v2.accuracy >= v1.accuracy > 0.8
    assert v3.accuracy < 0.6 and v4.accuracy < 0.2 and v5.accuracy < 0.2
    j = models.FEATURES.index(models.SHIFTED)
    assert np.allclose(v3.reference[:, j] - v1.reference[:, j], models.SHIFT_CM)
    rows = np.array([list(r.values()) for r in models.traffic_rows()])
    agreement = (v4.estimator.predict(rows) == v2.estimator.predict(rows)).mean()
    assert agreement < 0.5
    paths = models.bundle_all([v1, v4], tmp_path)
    meta = json.loads((paths["4.0.0"] / "model.json").read_text())
    assert meta["version"] == "4.0.0" and meta["name"] == models.NAME
    loaded = bundle.load_bundle(paths["1.0.0"])
    assert loaded.meta.validation.rows == 50 and loaded.meta.validation.labels
    assert loaded.feature_names == models.FEATURES
    assert len(models.traffic_rows()) == 150
