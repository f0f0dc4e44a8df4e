"""XGBoost and LightGBM through their scikit-learn API (the predictor's `xgboost` and
`lightgbm` extras): bundled with their versions recorded, a mismatch refused, served
exactly like the estimator. Skips only where the library is not installed."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest
from modeldeploy_predictor.bundle import BundleError, build_bundle, load_bundle

CATEGORICAL = ["city", "plan", "channel"]


def _records(frame) -> list[dict]:
    return orjson.loads(frame.to_json(orient="records"))


def _column(frame, name: str) -> dict:
    """One OIP v2 input per column, missing values as null."""
    col = frame[name]
    datatype = "BOOL" if col.dtype == bool else "FP64" if col.dtype.kind in "if" else "BYTES"
    data = [None if v is None or v != v else v for v in col.tolist()]
    return {"name": name, "shape": [len(frame)], "datatype": datatype, "data": data}


def _lightgbm_native(tabular):
    """LightGBM alone on pandas `category` columns (its native categorical support)."""
    import lightgbm as lgb

    df, y = tabular.frame(500, seed=1)
    frame = df.copy()
    for c in CATEGORICAL:
        frame[c] = frame[c].astype("category")
    return lgb, lgb.LGBMClassifier(n_estimators=25, verbose=-1).fit(frame, y), frame, df


def _xgboost_pipeline(tabular):
    """XGBoost last in a OneHotEncoder Pipeline (integer classes: its API needs them)."""
    import xgboost as xgb

    df, y = tabular.frame(500, seed=2)
    model = tabular.pipeline(final=xgb.XGBClassifier(n_estimators=25, max_depth=3))
    return xgb, model.fit(df, (y == "churn").astype(int)), df, df


@pytest.mark.parametrize("make", [_lightgbm_native, _xgboost_pipeline], ids=["lightgbm", "xgboost"])
def test_bundled_and_served_like_the_estimator(make, tabular, serve, tmp_path):
    library, model, frame, plain = make(tabular)
    module = library.__name__
    bundle = build_bundle(model, frame, "gb", "1", tmp_path / "gb")
    meta = orjson.loads((bundle / "model.json").read_bytes())
    assert meta["versions"][module] == library.__version__
    other = "lightgbm" if module == "xgboost" else "xgboost"
    assert other not in meta["versions"]
    if module == "lightgbm":
        assert {f["name"]: f["dtype"] for f in meta["features"]}["city"] == "category"
    want = model.predict(frame).tolist()
    want_p = model.predict_proba(frame)
    records = _records(plain)  # JSON rows: strings, numbers, booleans, null
    with serve(bundle) as server:
        r = httpx.post(server.url + "/predict", json=records, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == want
        # exactly the estimator's values (XGBoost's float32 widened, not re-spelled)
        assert r.json()["probabilities"] == want_p.astype(np.float64).tolist()
        body = {"inputs": [_column(plain, c) for c in plain.columns]}
        r = httpx.post(server.url + "/v2/models/gb/infer", json=body, timeout=60)
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}
        assert out["predict_proba"]["datatype"] == "FP64"
        assert out["predict_proba"]["data"] == want_p.astype(np.float64).ravel().tolist()
        body = {
            "instances": [[rec[c] for c in plain.columns] for rec in records[:50]],
        }
        r = httpx.post(server.url + "/v1/models/gb:predict", json=body, timeout=60)
        assert r.status_code == 200 and r.json()["predictions"] == want[:50]


def test_library_version_mismatch_is_refused_like_sklearn(tabular, tmp_path, monkeypatch):
    library, model, frame, _ = _xgboost_pipeline(tabular)
    bundle = build_bundle(model, frame, "gb", "1", tmp_path / "gb")
    meta_path = bundle / "model.json"
    meta = orjson.loads(meta_path.read_bytes())
    meta["versions"]["xgboost"] = "0.1"
    meta_path.write_bytes(orjson.dumps(meta))
    with pytest.raises(BundleError, match=r"made with xgboost 0\.1, this predictor has .*allow"):
        load_bundle(bundle)
    with pytest.warns(RuntimeWarning, match="xgboost 0.1"):
        loaded = load_bundle(bundle, allow_version_mismatch=True)
    assert loaded.estimator.predict(frame).tolist() == model.predict(frame).tolist()
    # a library that is not installed: refused, naming the extra that installs it
    from modeldeploy_predictor import libraries

    real = libraries.installed
    monkeypatch.setattr(libraries, "installed", lambda m: None if m == "xgboost" else real(m))
    meta["versions"]["xgboost"] = library.__version__
    meta_path.write_bytes(orjson.dumps(meta))
    with pytest.raises(BundleError, match=r"needs xgboost .*modeldeploy-predictor\[xgboost\]"):
        load_bundle(bundle)
