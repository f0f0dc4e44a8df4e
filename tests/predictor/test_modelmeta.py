"""model.json as a typed value: round trip, unknown keys kept, the format version checked."""

from __future__ import annotations

import orjson
import pytest
from modeldeploy_predictor import validation_set
from modeldeploy_predictor.modelmeta import FORMAT, BundleError, ModelMeta


def _doc(bundle) -> dict:
    return orjson.loads((bundle / "model.json").read_bytes())


def test_a_written_model_json_round_trips_exactly(classifier_bundle):
    doc = _doc(classifier_bundle)
    meta = ModelMeta.from_json(doc)
    assert meta.format == FORMAT and meta.is_classifier and meta.classes == (0, 1)
    assert meta.estimator.file == "model.joblib" and meta.reference.rows > 0
    assert meta.to_json() == doc
    assert list(meta.to_json()) == list(doc)  # same key order: a rewrite diffs cleanly


def test_keys_of_a_newer_writer_survive_attaching_a_validation_set(
    tmp_path, classifier_bundle, cancer
):
    import shutil

    import pandas as pd

    bundle = tmp_path / "b"
    shutil.copytree(classifier_bundle, bundle)
    doc = {**_doc(bundle), "owner": {"team": "risk"}}
    (bundle / "model.json").write_bytes(orjson.dumps(doc))
    x, y, names = cancer
    table = tmp_path / "holdout.csv"
    pd.DataFrame(x[:10], columns=names).assign(y=y[:10]).to_csv(table, index=False)
    validation_set.attach(bundle, table, "y")
    after = _doc(bundle)
    assert after["owner"] == {"team": "risk"} and after["validation"]["rows"] == 10
    assert ModelMeta.from_json(after).validation.labels is True


@pytest.mark.parametrize(("fmt", "found"), [(3, "3"), (0, "0"), ("2", "'2'"), (None, "None")])
def test_an_unknown_format_is_refused_naming_found_and_supported(classifier_bundle, fmt, found):
    doc = {**_doc(classifier_bundle), "format": fmt}
    with pytest.raises(BundleError) as info:
        ModelMeta.from_json(doc, "b/model.json")
    message = str(info.value)
    assert f"b/model.json: bundle format {found} is not supported" in message
    assert "reads formats [1, 2]" in message


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"estimator": {"file": "model.joblib"}}, "not a bundle's model.json (KeyError('sha256'))"),
        ({"features": [{"kind": "numeric"}]}, "invalid features"),
        ({"versions": "1.5"}, "not a bundle's model.json (AttributeError"),
    ],
)
def test_a_broken_field_is_named(classifier_bundle, edit, needle):
    with pytest.raises(BundleError) as info:
        ModelMeta.from_json({**_doc(classifier_bundle), **edit}, "m.json")
    assert f"m.json: {needle}" in str(info.value)


def test_a_missing_field_is_named(classifier_bundle):
    doc = _doc(classifier_bundle)
    del doc["versions"]
    with pytest.raises(BundleError, match=r"m\.json: field 'versions' missing"):
        ModelMeta.from_json(doc, "m.json")


def test_not_json_or_not_an_object():
    with pytest.raises(BundleError, match=r"m\.json: not valid JSON"):
        ModelMeta.loads(b"{", "m.json")
    with pytest.raises(BundleError, match=r"m\.json: not a JSON object"):
        ModelMeta.loads(b"[]", "m.json")
