"""A bundle's validation set: written by `bundle --validation`, covered by the
digests, served on /v2/models/{name}/validation."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import joblib
import numpy as np
import orjson
import pytest
from modeldeploy_predictor import tables, validation_set
from modeldeploy_predictor.bundle import BundleError, load_bundle
from modeldeploy_predictor.modelmeta import ModelMeta


def write_csv(path, names, columns) -> None:
    rows = np.column_stack(columns)
    np.savetxt(path, rows, delimiter=",", header=",".join(names), comments="")


@pytest.fixture
def made(tmp_path, cli, classifier, cancer):
    """A bundle made by the CLI with a labelled validation set (features shuffled)."""
    x, y, names = cancer
    model = tmp_path / "model.joblib"
    joblib.dump(classifier, model)
    reference = tmp_path / "reference.csv"
    write_csv(reference, names, [x[:, j] for j in range(x.shape[1])])
    holdout = tmp_path / "holdout.csv"
    order = list(reversed(range(len(names))))  # other column order, plus an extra column
    write_csv(
        holdout,
        ["y", "note", *[names[j] for j in order]],
        [y[:40], np.zeros(40), *[x[:40, j] for j in order]],
    )
    out = tmp_path / "bundle"
    subprocess.run(
        [cli, "bundle", "--model", model, "--reference", reference, "--name", "cancer",
         "--version", "1.0.0", "--out", out, "--validation", holdout, "--label-column", "y"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out, holdout, x[:40], y[:40], names


def test_cli_stores_rows_labels_and_digests(made):
    out, holdout, x, y, names = made
    meta = orjson.loads((out / "model.json").read_bytes())
    entry = meta["validation"]
    assert entry["rows"] == 40 and entry["labels"] is True
    assert entry["sha256"] == tables.file_sha256(out / "validation.json")
    assert entry["data_sha256"] == tables.file_sha256(holdout)
    doc = validation_set.load(out, ModelMeta.from_json(meta))
    assert doc["features"] == names
    assert np.allclose(np.array(doc["rows"]), x)  # back in the model's feature order
    assert doc["labels"] == [int(v) for v in y] and all(isinstance(v, int) for v in doc["labels"])
    load_bundle(out)  # still a valid bundle


def test_a_tampered_validation_set_is_refused(made):
    out, *_ = made
    doc = orjson.loads((out / "validation.json").read_bytes())
    doc["labels"][0] = 1 - doc["labels"][0]
    (out / "validation.json").write_bytes(orjson.dumps(doc))
    with pytest.raises(BundleError, match=r"validation\.json: sha256 mismatch"):
        validation_set.load(out, ModelMeta.loads((out / "model.json").read_bytes()))


def test_missing_feature_and_unknown_labels_are_named(tmp_path, classifier_bundle, cancer):
    x, _, names = cancer
    out = tmp_path / "b"
    shutil.copytree(classifier_bundle, out)
    partial = tmp_path / "partial.csv"
    write_csv(partial, names[1:], [x[:5, j] for j in range(1, len(names))])
    with pytest.raises(BundleError, match=rf"lacks the model's features \['{names[0]}'\]"):
        validation_set.attach(out, partial)
    bad = tmp_path / "bad.csv"
    write_csv(bad, [*names, "y"], [*[x[:5, j] for j in range(len(names))], np.full(5, 7.0)])
    with pytest.raises(BundleError, match=r"labels \[7\] are not among the classes \[0, 1\]"):
        validation_set.attach(out, bad, "y")
    with pytest.raises(BundleError, match="no label column 'label'"):
        validation_set.attach(out, bad, "label")


def test_label_column_needs_validation(tmp_path, cli):
    r = subprocess.run(
        [cli, "bundle", "--model", "m", "--reference", "r", "--name", "n", "--version", "1",
         "--out", tmp_path / "o", "--label-column", "y"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "--label-column needs --validation" in r.stderr


def test_served_on_the_v2_extension_endpoint(made, classifier_bundle, serve):
    out, *_ = made
    with serve(out) as server:
        r = httpx.get(server.url + "/v2/models/cancer/validation", timeout=10)
        assert r.status_code == 200 and len(r.json()["rows"]) == 40
        wrong = httpx.get(server.url + "/v2/models/other/validation", timeout=10)
        assert wrong.status_code == 404 and wrong.json()["reason"] == "model_not_found"
    with serve(classifier_bundle) as server:
        none = httpx.get(server.url + "/v2/models/cancer/validation", timeout=10)
        assert none.status_code == 404 and "has no validation set" in none.json()["error"]


def test_a_remote_bundle_brings_its_validation_set(made, tmp_path):
    import functools
    import http.server
    import threading

    from modeldeploy_predictor import sources

    out, *_ = made
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        local = sources.fetch(f"http://127.0.0.1:{server.server_address[1]}/", tmp_path / "cache")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    doc = validation_set.load(local, ModelMeta.loads((local / "model.json").read_bytes()))
    assert doc is not None and len(doc["rows"]) == 40
