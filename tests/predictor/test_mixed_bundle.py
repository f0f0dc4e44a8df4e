"""Bundles of mixed-type models: what model.json records, CSV/Parquet with inferred and
overridden kinds, column checks against feature_names_in_, the format version."""

from __future__ import annotations

import subprocess

import joblib
import numpy as np
import orjson
import pandas as pd
import pytest
from modeldeploy_predictor import columns, tables
from modeldeploy_predictor.bundle import BundleError, build_bundle, load_bundle
from modeldeploy_predictor.model import SklearnModel
from modeldeploy_predictor.modelmeta import FORMAT


def _cli(cli, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli), "bundle", *args], capture_output=True, text=True)


def test_model_json_records_kind_dtype_missing_and_categories(mixed_bundle, mixed):
    train, _, _ = mixed
    meta = orjson.loads((mixed_bundle / "model.json").read_bytes())
    assert meta["format"] == FORMAT == 2
    assert meta["classes"] == ["churn", "stay"]
    features = {f["name"]: f for f in meta["features"]}
    assert [f["name"] for f in meta["features"]] == list(train.columns)
    assert features["age"] == {"name": "age", "kind": "numeric", "dtype": "int64", "missing": False}
    assert features["income"]["missing"] is True and features["income"]["kind"] == "numeric"
    assert features["member"]["kind"] == "boolean" and features["member"]["dtype"] == "bool"
    assert features["city"]["kind"] == "categorical"
    assert features["city"]["categories"] == sorted(train["city"].unique())
    assert features["channel"]["missing"] is True and None not in features["channel"]["categories"]
    assert meta["versions"]["pandas"] == pd.__version__
    ref = orjson.loads((mixed_bundle / "reference.json").read_bytes())
    plan = ref["features"]["plan"]
    shares = train["plan"].value_counts(normalize=True)
    assert plan["categories"] == list(shares.index)  # most frequent first
    assert plan["proportions"] == pytest.approx([*shares.tolist(), 0.0])  # + "other"
    assert ref["predictions"]["categories"] == ["churn", "stay"]


def test_loaded_model_predicts_like_the_estimator_and_warms_up(mixed_bundle, mixed, mixed_model):
    _, _, holdout = mixed
    model = SklearnModel(load_bundle(mixed_bundle))
    model.warm_up()
    assert model.frame and not model.schema.all_numeric
    nullable = {f.name for f in model.schema.features if f.nullable}
    assert nullable == {"income", "channel"}
    x = columns.from_values(
        model.schema,
        [[None if v != v else v for v in holdout[n].tolist()] for n in holdout.columns],
    )
    pred, proba = model.predict(x)
    assert pred.tolist() == mixed_model.predict(holdout).tolist()
    assert np.allclose(proba, mixed_model.predict_proba(holdout), rtol=0, atol=1e-12)


def test_cli_csv_kinds_inferred_and_overridden(tabular, tmp_path, cli):
    train, y = tabular.frame(300, seed=3)
    train["zip"] = np.where(train["city"] == "paris", "07500", "69001")  # digits, but a code
    train["vip"] = np.where(train["member"], "yes", "no")
    pipe = tabular.pipeline()
    pipe.steps[0][1].transformers.append(("codes", "drop", ["zip", "vip"]))
    pipe.fit(train, y)
    joblib.dump(pipe, tmp_path / "m.joblib")
    train.to_csv(tmp_path / "ref.csv", index=False)
    base = ["--model", str(tmp_path / "m.joblib"), "--name", "c", "--version", "1"]
    ref = ["--reference", str(tmp_path / "ref.csv")]
    done = _cli(
        cli, *base, *ref, "--categorical", "zip", "--boolean", "vip", "--out", str(tmp_path / "b")
    )
    assert done.returncode == 0, done.stderr
    bundle = load_bundle(tmp_path / "b")
    kinds = {f.name: (f.kind, f.categories) for f in bundle.schema.features}
    assert kinds["zip"] == ("categorical", ("07500", "69001"))  # leading zero kept
    assert kinds["vip"][0] == "boolean" and kinds["city"][0] == "categorical"
    assert kinds["age"][0] == "numeric" and kinds["member"][0] == "boolean"
    assert bundle.meta.reference.data_sha256 == tables.file_sha256(tmp_path / "ref.csv")
    # the same data as Parquet keeps its types: the same schema without overrides for zip
    train["vip"] = train["vip"] == "yes"
    train.to_parquet(tmp_path / "ref.parquet")
    pq_ref = ["--reference", str(tmp_path / "ref.parquet")]
    done = _cli(cli, *base, *pq_ref, "--out", str(tmp_path / "p"))
    assert done.returncode == 0, done.stderr
    assert load_bundle(tmp_path / "p").schema.names == bundle.schema.names
    # overrides naming absent columns, or non-boolean values, are refused by name
    done = _cli(cli, *base, *ref, "--boolean", "city", "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "column 'city' is declared boolean" in done.stderr
    done = _cli(cli, *base, *ref, "--categorical", "nope", "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "nope" in done.stderr
    assert not (tmp_path / "x").exists()


def test_reference_columns_must_match_feature_names_in(mixed, mixed_model, tmp_path):
    train, _, _ = mixed
    with pytest.raises(BundleError, match=r"missing \['plan'\], unknown \['colour'\]"):
        build_bundle(
            mixed_model, train.rename(columns={"plan": "colour"}), "c", "1", tmp_path / "b"
        )
    with pytest.raises(BundleError, match="order differs"):
        build_bundle(mixed_model, train[train.columns[::-1]], "c", "1", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_unknown_format_is_refused_and_format_1_still_loads(classifier_bundle, tmp_path):
    import shutil

    for fmt, ok in ((99, False), (None, False), (1, True)):
        bundle = tmp_path / f"b{fmt}"
        shutil.copytree(classifier_bundle, bundle)
        meta = orjson.loads((bundle / "model.json").read_bytes())
        meta["format"] = fmt
        if fmt == 1:  # what format 1 wrote: names and dtypes only
            meta["features"] = [{"name": f["name"], "dtype": "float64"} for f in meta["features"]]
        (bundle / "model.json").write_bytes(orjson.dumps(meta))
        if ok:
            loaded = load_bundle(bundle)
            assert loaded.schema.all_numeric and loaded.warmup_rows().shape[0] == 3
        else:
            with pytest.raises(BundleError, match=rf"bundle format {fmt} is not supported"):
                load_bundle(bundle)
