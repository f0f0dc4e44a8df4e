"""KServe's Python REST client (``kserve.InferenceRESTClient``) against the predictor, as its
users call it: ``InferInput.set_data_from_numpy`` (binary tensors by default, or JSON) in an
``InferRequest``, binary or JSON outputs, and KServe v1 ``instances``. Numeric and mixed-type.

The ``kserve`` package pins versions that clash with ours, so it lives in its own venv,
made on first use from requirements/kserve-client.txt and cached by that file's hash under
``~/.cache/modeldeploy/test``; ``kserve_driver.py`` runs there in a subprocess. Without
network or uv/pip the venv cannot be made: a skip, and a failure under ``CI=true``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from modeldeploy_devcluster import procs
from modeldeploy_devcluster.pytest_plugin import missing_tool

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "requirements" / "kserve-client.txt"
DRIVER = Path(__file__).with_name("kserve_driver.py")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "modeldeploy" / "test"


def _install(venv: Path) -> None:
    """uv when there is one (fast, cached wheels), else venv + pip."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    python = venv / "bin" / "python"
    if Path(uv).exists():
        steps = [
            [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(REQUIREMENTS)],
        ]
    else:
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
        ]
    for step in steps:
        subprocess.run(step, check=True, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    venv = _cache_root() / f"kserve-client-{digest}"
    python = venv / "bin" / "python"
    if not python.exists():
        building = venv.with_name(f"{venv.name}.tmp-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        try:
            _install(building)
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(building, ignore_errors=True)
            detail = getattr(exc, "stderr", "") or exc
            reason = f"cannot make the kserve client venv from {REQUIREMENTS.name}: {detail}"
            missing_tool(reason)
        try:
            building.rename(venv)  # atomic: a half-made venv is never used
        except OSError:  # another session made it meanwhile
            shutil.rmtree(building, ignore_errors=True)
    return python


class Driver:
    """kserve_driver.py in the kserve venv, one job per line each way."""

    def __init__(self, python: Path) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def __call__(self, job: dict) -> dict:
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"kserve driver exited {self.proc.poll()}"
        return json.loads(line)


@pytest.fixture(scope="session")
def drive(kserve_python) -> Iterator[Driver]:
    driver = Driver(kserve_python)
    try:
        yield driver
    finally:
        driver.proc.stdin.close()
        procs.stop(driver.proc, grace=10.0)


def v2_job(server, model: str, inputs: list[dict], binary: bool) -> dict:
    return {
        "url": server.url,
        "model": model,
        "protocol": "v2",
        "binary": binary,
        "binary_outputs": binary,
        "inputs": inputs,
        "outputs": ["predict", "predict_proba"],
    }


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_numeric_model(drive, cancer_server, classifier, cancer, binary):
    x = cancer[0][:200]
    data = x.ravel().tolist()
    tensor = {"name": "input-0", "datatype": "FP64", "shape": list(x.shape), "data": data}
    got = drive(v2_job(cancer_server, "cancer", [tensor], binary))
    assert got["ready"] is True and got["model"] == "cancer"
    assert got["outputs"]["predict"] == classifier.predict(x).tolist()
    proba = np.array(got["outputs"]["predict_proba"]).reshape(-1, 2)
    assert np.allclose(proba, classifier.predict_proba(x), rtol=0, atol=1e-15)


def _column(frame, name: str) -> dict:
    col = frame[name]
    if col.dtype == bool:
        datatype, data = "BOOL", col.tolist()
    elif col.dtype.kind in "if":  # missing income: NaN in binary, null in JSON
        datatype, data = "FP64", [None if v != v else float(v) for v in col.tolist()]
    else:
        datatype, data = "BYTES", col.tolist()
    return {"name": name, "datatype": datatype, "shape": [len(frame), 1], "data": data}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_mixed_model_one_input_per_column(drive, mixed_server, mixed, mixed_model, binary):
    _, _, holdout = mixed
    rows = holdout[holdout["channel"].notna()].reset_index(drop=True)  # BYTES has no null
    assert rows["income"].isna().any()  # missing numbers do go through
    inputs = [_column(rows, name) for name in rows.columns]
    got = drive(v2_job(mixed_server, "churn", inputs, binary))
    assert got["ready"] is True
    assert got["outputs"]["predict"] == mixed_model.predict(rows).tolist()  # string classes
    proba = np.array(got["outputs"]["predict_proba"]).reshape(len(rows), 2)
    assert np.allclose(proba, mixed_model.predict_proba(rows), rtol=0, atol=1e-12)


def test_v1_instances_as_objects(drive, mixed_server, mixed, mixed_model, tabular):
    _, _, holdout = mixed  # every row, missing values as null
    job = {
        "url": mixed_server.url,
        "model": "churn",
        "protocol": "v1",
        "body": {"instances": tabular.records(holdout)},
    }
    got = drive(job)
    assert got["ready"] is True
    assert got["answer"]["predictions"] == mixed_model.predict(holdout).tolist()


def test_bad_column_is_a_4xx_the_client_reports(drive, mixed_server, mixed):
    _, _, holdout = mixed
    rows = holdout.iloc[:3]
    inputs = [_column(rows, name) for name in rows.columns]
    inputs[0] = {**inputs[0], "datatype": "BYTES", "data": ["old", "young", "x"]}  # age
    got = drive(v2_job(mixed_server, "churn", inputs, False))
    assert "error" in got and "422" in got["error"], got  # kserve raises on the 4xx
    assert "age" in got["error"], got
