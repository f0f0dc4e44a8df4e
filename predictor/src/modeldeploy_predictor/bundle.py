"""Model bundles: a directory with the estimator, ``model.json`` and drift references.

A bundle is what the operator deploys, so it must be self-describing and
tamper-evident: ``model.json`` carries the sha256 of every other file, and the
bundle's own digest is the sha256 of ``model.json``. A loader that checks
``model.json`` against the digest in the ModelDeployment and every file against
``model.json`` has checked the whole bundle.

Layout::

    model.json        name, version, task, classes, features, versions, digests
    model.joblib      the fitted estimator (or model.skops)
    reference.json    drift references: per-feature quantile bins, prediction distribution
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import platform
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import sklearn

from . import drift, tables

log = logging.getLogger(__name__)

FORMAT = 1
MODEL_JSON = "model.json"
REFERENCE_JSON = "reference.json"
N_BINS = 10


class BundleError(Exception):
    """A bundle cannot be written or loaded; the message names the file and the problem."""


@dataclass
class Bundle:
    path: Path
    meta: dict[str, Any]
    estimator: Any
    feature_bins: list[drift.NumericBins]
    prediction_bins: drift.NumericBins | drift.CategoricalBins | None
    digest: str  # "sha256:<hex of model.json>"

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.meta["features"]]

    @property
    def is_classifier(self) -> bool:
        return self.meta["task"] == "classifier"

    def warmup_rows(self) -> np.ndarray:
        """A synthetic row per quantile (middle bin edges), so no training rows are stored."""
        cols = []
        for bins in self.feature_bins:
            edges = bins.edges if bins.edges.size else np.zeros(1)
            cols.append(edges[[0, edges.size // 2, -1]])
        return np.column_stack(cols)


def task_of(estimator: Any) -> str:
    if getattr(estimator, "_estimator_type", None) == "classifier" or hasattr(
        estimator, "classes_"
    ):
        return "classifier"
    return "regressor"


def build_bundle(
    estimator: Any,
    reference: Any,
    name: str,
    version: str,
    out_dir: str | Path,
    *,
    feature_names: list[str] | None = None,
    reference_sha256: str | None = None,
    model_format: str = "joblib",
) -> Path:
    """Write a bundle for a fitted estimator and its training features.

    ``reference`` is a pandas DataFrame (column names are the features) or a 2-D
    array with ``feature_names``. ``reference_sha256`` is the digest of the
    reference data file when there is one; otherwise the digest of the float64
    matrix bytes is recorded.
    """
    names, data = _reference_matrix(reference, feature_names)
    _check_features(estimator, names, where="reference data")
    if data.shape[0] == 0:
        raise BundleError("reference data has no rows")
    out = Path(out_dir)
    task = task_of(estimator)
    classes = [_plain(c) for c in estimator.classes_] if task == "classifier" else None
    feature_bins = [drift.quantile_bins(data[:, j], N_BINS) for j in range(data.shape[1])]
    finite = np.isfinite(data).all(axis=1)
    preds = np.asarray(estimator.predict(data[finite] if finite.any() else data))
    if classes is not None:
        pred_bins: Any = drift.categorical_bins(preds, classes)
    else:
        pred_bins = drift.quantile_bins(preds.astype(float), N_BINS)
    reference_doc = {
        "bins": N_BINS,
        "features": {n: b.to_json() for n, b in zip(names, feature_bins, strict=True)},
        "predictions": pred_bins.to_json(),
    }
    # Write into a temporary sibling and rename, so a failure leaves no half bundle.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model_file = _dump_estimator(estimator, tmp, model_format)
        (tmp / REFERENCE_JSON).write_bytes(orjson.dumps(reference_doc, option=orjson.OPT_INDENT_2))
        meta = {
            "format": FORMAT,
            "name": name,
            "version": version,
            "task": task,
            "classes": classes,
            "features": [{"name": n, "dtype": "float64"} for n in names],
            "estimator": {
                "file": model_file.name,
                "format": model_format,
                "class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
                "sha256": tables.file_sha256(model_file),
            },
            "reference": {
                "file": REFERENCE_JSON,
                "sha256": tables.file_sha256(tmp / REFERENCE_JSON),
                "data_sha256": reference_sha256
                or hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest(),
                "rows": int(data.shape[0]),
            },
            "versions": {
                "python": platform.python_version(),
                "sklearn": sklearn.__version__,
                "numpy": np.__version__,
            },
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        (tmp / MODEL_JSON).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def bundle_from_files(model: Path, reference: Path, name: str, version: str, out: Path) -> Path:
    """The CLI's ``bundle`` command: a joblib/skops file plus a CSV/Parquet file."""
    estimator = _load_estimator(model, "skops" if model.suffix == ".skops" else "joblib")
    names, data = tables.read_table(reference)
    fmt = "skops" if model.suffix == ".skops" else "joblib"
    return build_bundle(
        estimator,
        data,
        name,
        version,
        out,
        feature_names=names,
        reference_sha256=tables.file_sha256(reference),
        model_format=fmt,
    )


def load_bundle(path: str | Path, *, allow_version_mismatch: bool = False) -> Bundle:
    """Verify and load a bundle directory; raise :class:`BundleError` on any mismatch."""
    root = Path(path)
    meta_path = root / MODEL_JSON
    if not meta_path.is_file():
        raise BundleError(f"{meta_path}: missing; not a model bundle")
    raw = meta_path.read_bytes()
    try:
        meta = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc})") from None
    for key in ("name", "version", "task", "features", "estimator", "reference", "versions"):
        if key not in meta:
            raise BundleError(f"{meta_path}: field {key!r} missing")
    est_meta, ref_meta = meta["estimator"], meta["reference"]
    verify_file(root / est_meta["file"], est_meta["sha256"])
    verify_file(root / ref_meta["file"], ref_meta["sha256"])
    _check_sklearn_version(meta["versions"].get("sklearn"), allow_version_mismatch, meta_path)
    estimator = _load_estimator(root / est_meta["file"], est_meta.get("format", "joblib"))
    names = [f["name"] for f in meta["features"]]
    _check_features(estimator, names, where=str(meta_path))
    if meta["task"] == "classifier":
        actual = [_plain(c) for c in getattr(estimator, "classes_", [])]
        if actual != meta.get("classes"):
            raise BundleError(
                f"{meta_path}: classes {meta.get('classes')} do not match the estimator's {actual}"
            )
    reference = orjson.loads((root / ref_meta["file"]).read_bytes())
    try:
        feature_bins = [drift.NumericBins.from_json(reference["features"][n]) for n in names]
    except KeyError as exc:
        raise BundleError(f"{root / ref_meta['file']}: no reference bins for {exc}") from None
    pred = reference.get("predictions")
    if pred is None:
        pred_bins = None
    elif "categories" in pred:
        pred_bins = drift.CategoricalBins.from_json(pred)
    else:
        pred_bins = drift.NumericBins.from_json(pred)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    return Bundle(root, meta, estimator, feature_bins, pred_bins, digest)


def verify_file(path: Path, expected: str) -> None:
    if not path.is_file():
        raise BundleError(f"{path}: missing (model.json lists it with sha256 {expected})")
    actual = tables.file_sha256(path)
    if actual != expected:
        raise BundleError(
            f"{path}: sha256 mismatch: model.json says {expected}, the file has {actual}"
        )


def _check_sklearn_version(recorded: str | None, allow: bool, where: Path) -> None:
    if recorded == sklearn.__version__:
        return
    message = (
        f"{where}: bundle was made with scikit-learn {recorded}, "
        f"this predictor has {sklearn.__version__}"
    )
    if not allow:
        raise BundleError(message + " (pass --allow-version-mismatch to load anyway)")
    log.warning("%s; loading anyway (--allow-version-mismatch)", message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _check_features(estimator: Any, names: list[str], where: str) -> None:
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in is not None and n_in != len(names):
        raise BundleError(
            f"{where}: {len(names)} features {names[:5]}{'...' if len(names) > 5 else ''}, "
            f"but the estimator was fitted on {n_in} (n_features_in_)"
        )
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and list(fitted) != list(names):
        missing = [n for n in fitted if n not in names]
        unknown = [n for n in names if n not in list(fitted)]
        detail = f"missing {missing}, unknown {unknown}" if missing or unknown else "order differs"
        raise BundleError(
            f"{where}: feature names do not match the estimator's feature_names_in_ ({detail})"
        )


def _reference_matrix(reference: Any, feature_names: list[str] | None) -> tuple[list[str], Any]:
    if hasattr(reference, "columns") and hasattr(reference, "to_numpy"):  # pandas, duck-typed
        names = [str(c) for c in reference.columns]
        data = reference.to_numpy(dtype=float)
    else:
        data = np.asarray(reference, dtype=float)
        if feature_names is None:
            raise BundleError("reference is an array: pass feature_names")
        names = list(feature_names)
    if data.ndim != 2 or data.shape[1] != len(names):
        raise BundleError(
            f"reference data has shape {data.shape}, expected (rows, {len(names)}) for {names}"
        )
    return names, data


def _dump_estimator(estimator: Any, directory: Path, model_format: str) -> Path:
    if model_format == "skops":
        import skops.io as sio

        path = directory / "model.skops"
        sio.dump(estimator, path)
        return path
    path = directory / "model.joblib"
    joblib.dump(estimator, path)
    return path


def _load_estimator(path: Path, model_format: str) -> Any:
    if not path.is_file():
        raise BundleError(f"{path}: no such model file")
    try:
        if model_format == "skops":
            import skops.io as sio

            # The digest was verified against model.json, so the bundle's types are trusted.
            return sio.load(path, trusted=sio.get_untrusted_types(file=path))
        return joblib.load(path)
    except ImportError as exc:
        raise BundleError(f"{path}: cannot load {model_format} model: {exc}") from None
    except Exception as exc:
        raise BundleError(f"{path}: cannot load {model_format} model: {exc!r}") from None


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
