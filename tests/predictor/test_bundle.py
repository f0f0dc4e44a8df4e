"""Bundles: what model.json records, digest verification, version and feature checks, the CLI."""

from __future__ import annotations

import csv
import subprocess
import warnings

import joblib
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sklearn
from modeldeploy_predictor import tables
from modeldeploy_predictor.bundle import BundleError, build_bundle, load_bundle


def _edit_meta(bundle, **changes):
    path = bundle / "model.json"
    meta = orjson.loads(path.read_bytes())
    for dotted, value in changes.items():
        node = meta
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_bytes(orjson.dumps(meta))


def test_model_json_records_everything(classifier_bundle, cancer):
    x, _, names = cancer
    meta = orjson.loads((classifier_bundle / "model.json").read_bytes())
    assert meta["name"] == "cancer" and meta["version"] == "1.0.0"
    assert meta["task"] == "classifier" and meta["classes"] == [0, 1]
    assert [f["name"] for f in meta["features"]] == names
    assert meta["versions"]["sklearn"] == sklearn.__version__
    assert meta["versions"]["numpy"] == np.__version__ and meta["versions"]["python"]
    assert meta["estimator"]["sha256"] == tables.file_sha256(classifier_bundle / "model.joblib")
    assert meta["reference"]["rows"] == x.shape[0]
    assert len(meta["reference"]["data_sha256"]) == 64 and meta["created"]
    ref = orjson.loads((classifier_bundle / "reference.json").read_bytes())
    first = ref["features"][names[0]]
    assert len(first["proportions"]) == len(first["edges"]) + 1
    assert sum(first["proportions"]) == pytest.approx(1.0)
    assert ref["predictions"]["categories"] == [0, 1]


def test_load_roundtrip_predicts_like_the_estimator(classifier_bundle, classifier, cancer):
    x, _, _ = cancer
    loaded = load_bundle(classifier_bundle)
    assert loaded.digest.startswith("sha256:")
    assert np.array_equal(loaded.estimator.predict(x), classifier.predict(x))
    assert loaded.is_classifier and loaded.warmup_rows().shape == (3, x.shape[1])


def test_regressor_reference_predictions_are_binned(regressor_bundle):
    loaded = load_bundle(regressor_bundle)
    assert loaded.meta.task == "regressor" and loaded.meta.classes is None
    assert loaded.prediction_bins.edges.size == 9


def _copy(bundle, tmp_path):
    import shutil

    return shutil.copytree(bundle, tmp_path / "copy")


def test_tampered_estimator_is_refused_naming_file_and_both_digests(classifier_bundle, tmp_path):
    bundle = _copy(classifier_bundle, tmp_path)
    recorded = orjson.loads((bundle / "model.json").read_bytes())["estimator"]["sha256"]
    with open(bundle / "model.joblib", "ab") as fh:
        fh.write(b"tampered")
    actual = tables.file_sha256(bundle / "model.joblib")
    with pytest.raises(BundleError) as info:
        load_bundle(bundle)
    message = str(info.value)
    assert str(bundle / "model.joblib") in message
    assert recorded in message and actual in message


def test_tampered_reference_is_refused(classifier_bundle, tmp_path):
    bundle = _copy(classifier_bundle, tmp_path)
    (bundle / "reference.json").write_bytes(b"{}")
    with pytest.raises(BundleError, match=r"reference\.json: sha256 mismatch"):
        load_bundle(bundle)


def test_sklearn_version_mismatch_refused_or_warned(classifier_bundle, tmp_path):
    bundle = _copy(classifier_bundle, tmp_path)
    _edit_meta(bundle, versions__sklearn="0.24.2")
    with pytest.raises(BundleError, match=r"scikit-learn 0\.24\.2.*--allow-version-mismatch"):
        load_bundle(bundle)
    with pytest.warns(RuntimeWarning, match=r"0\.24\.2"):
        loaded = load_bundle(bundle, allow_version_mismatch=True)
    assert loaded.version == "1.0.0"


def test_feature_count_mismatch_is_refused(classifier_bundle, tmp_path):
    bundle = _copy(classifier_bundle, tmp_path)
    meta = orjson.loads((bundle / "model.json").read_bytes())
    _edit_meta(bundle, features=meta["features"][:-1])
    with pytest.raises(BundleError, match=r"29 features .* fitted on 30 \(n_features_in_\)"):
        load_bundle(bundle)


def test_feature_names_must_match_feature_names_in(classifier, cancer, tmp_path):
    x, y, names = cancer
    named = sklearn.base.clone(classifier).fit(x, y)
    named.feature_names_in_ = np.array(names, dtype=object)
    wrong = [*names[:-1], "bogus"]
    with pytest.raises(
        BundleError, match=r"missing \['worst_fractal_dimension'\], unknown \['bogus'\]"
    ):
        build_bundle(named, x, "n", "1", tmp_path / "b", feature_names=wrong)
    assert not (tmp_path / "b").exists()
    build_bundle(named, x, "n", "1", tmp_path / "b", feature_names=names)
    assert load_bundle(tmp_path / "b").feature_names == names


def test_reference_with_wrong_width_is_refused(classifier, cancer, tmp_path):
    x, _, names = cancer
    with pytest.raises(BundleError, match="fitted on 30"):
        build_bundle(classifier, x[:, :5], "n", "1", tmp_path / "b", feature_names=names[:5])


def test_missing_model_json_is_named(tmp_path):
    with pytest.raises(BundleError, match=r"model\.json: missing"):
        load_bundle(tmp_path)


def _bundle_cli(cli, model, reference, name, version, out) -> subprocess.CompletedProcess:
    args = ["--model", model, "--reference", reference, "--name", name, "--version", version]
    return subprocess.run(
        [str(cli), "bundle", *map(str, args), "--out", str(out)], capture_output=True, text=True
    )


def test_cli_bundle_from_csv_and_parquet(classifier, cancer, tmp_path, cli):
    x, _, names = cancer
    joblib.dump(classifier, tmp_path / "m.joblib")
    with open(tmp_path / "ref.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        writer.writerows(x.tolist())
    pq.write_table(pa.table({n: x[:, j] for j, n in enumerate(names)}), tmp_path / "ref.parquet")
    for ref in ("ref.csv", "ref.parquet"):
        out = tmp_path / f"bundle-{ref}"
        done = _bundle_cli(
            cli, str(tmp_path / "m.joblib"), str(tmp_path / ref), "cancer", "3", str(out)
        )
        assert done.returncode == 0, done.stderr
        loaded = load_bundle(out)
        assert loaded.feature_names == names
        assert loaded.meta.reference.data_sha256 == tables.file_sha256(tmp_path / ref)
    # the two formats give the same reference statistics
    a = orjson.loads((tmp_path / "bundle-ref.csv" / "reference.json").read_bytes())
    b = orjson.loads((tmp_path / "bundle-ref.parquet" / "reference.json").read_bytes())
    assert a == b


def test_cli_bundle_refuses_strings_for_an_array_fitted_estimator(tmp_path, cli):
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression().fit(np.array([[0.0, 1.0], [1.0, 0.0]]), [0, 1])
    joblib.dump(est, tmp_path / "m.joblib")
    (tmp_path / "ref.csv").write_text("a,b\n1,x\n")
    done = _bundle_cli(
        cli, str(tmp_path / "m.joblib"), str(tmp_path / "ref.csv"), "c", "1", str(tmp_path / "out")
    )
    assert done.returncode == 2
    assert "reference columns ['b (categorical)'] are not numeric" in done.stderr
    assert "fitted on a numeric array" in done.stderr
    assert not (tmp_path / "out").exists()


def test_no_version_warning_when_versions_match(classifier_bundle):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_bundle(classifier_bundle)
