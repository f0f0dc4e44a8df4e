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
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson

from . import columns, drift, libraries, tables
from . import schema as schema_mod
from .modelmeta import BundleError, EstimatorFile, ModelMeta, ReferenceFile
from .schema import BOOLEAN, CATEGORICAL, NUMERIC, Feature, Schema

log = logging.getLogger(__name__)

TOP_CATEGORIES = 50  # drift buckets per categorical feature; the rest share "other"
MODEL_JSON = "model.json"
REFERENCE_JSON = "reference.json"
N_BINS = 10


@dataclass
class Bundle:
    path: Path
    meta: ModelMeta
    estimator: Any
    feature_bins: list[drift.FeatureBins]
    prediction_bins: drift.NumericBins | drift.CategoricalBins | None
    digest: str  # "sha256:<hex of model.json>"
    schema: Schema = field(default_factory=lambda: Schema(()))

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def feature_names(self) -> list[str]:
        return self.schema.names

    @property
    def is_classifier(self) -> bool:
        return self.meta.is_classifier

    def warmup_rows(self) -> Any:
        """Three synthetic rows from the reference statistics, so no training rows are stored:
        a float matrix for all-numeric models, else :class:`columns.Columns`."""
        cols: list[Any] = []
        for bins in self.feature_bins:
            if isinstance(bins, drift.NumericBins):
                edges = bins.edges if bins.edges.size else np.zeros(1)
                cols.append(edges[[0, edges.size // 2, -1]])
            else:
                seen = bins.categories or [None]
                cols.append([seen[0], seen[len(seen) // 2], seen[-1]])
        if self.schema.all_numeric:
            return np.column_stack(cols)
        return columns.from_values(self.schema, cols)


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
    categorical: Sequence[str] = (),
    boolean: Sequence[str] = (),
) -> Path:
    """Write a bundle for a fitted estimator and its training features.

    ``reference`` is a pandas DataFrame (column names are the features; numeric,
    string, boolean and categorical columns, missing values allowed) or a 2-D
    numeric array with ``feature_names``. ``categorical`` / ``boolean`` override
    the kinds inferred from the dtypes. ``reference_sha256`` is the digest of
    the reference data file when there is one; otherwise a digest of the data
    itself is recorded.
    """
    frame, data = _reference_frame(reference, feature_names)
    schema = reference_schema(frame, categorical, boolean)
    names = schema.names
    _check_features(estimator, names, where="reference data")
    _check_numeric_input(estimator, schema)
    if len(frame) == 0:
        raise BundleError("reference data has no rows")
    out = Path(out_dir)
    task = task_of(estimator)
    classes = [_plain(c) for c in estimator.classes_] if task == "classifier" else None
    feature_bins = [_feature_bins(f, frame[f.name]) for f in schema.features]
    preds = _reference_predictions(estimator, frame, data)
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
        meta = ModelMeta(
            name=name,
            version=version,
            task=task,
            classes=None if classes is None else tuple(classes),
            features=schema,
            estimator=EstimatorFile(
                model_file.name,
                tables.file_sha256(model_file),
                model_format,
                f"{type(estimator).__module__}.{type(estimator).__qualname__}",
            ),
            reference=ReferenceFile(
                REFERENCE_JSON,
                tables.file_sha256(tmp / REFERENCE_JSON),
                reference_sha256 or _data_sha256(frame, data),
                len(frame),
            ),
            versions=libraries.versions(estimator, pandas=data is None),
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        (tmp / MODEL_JSON).write_bytes(meta.dumps())
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def bundle_from_files(
    model: Path,
    reference: Path,
    name: str,
    version: str,
    out: Path,
    *,
    categorical: Sequence[str] = (),
    boolean: Sequence[str] = (),
) -> Path:
    """The CLI's ``bundle`` command: a joblib/skops file plus a CSV/Parquet file."""
    fmt = "skops" if model.suffix == ".skops" else "joblib"
    estimator = _load_estimator(model, fmt)
    frame = tables.read_table(reference, categorical, boolean)
    return build_bundle(
        estimator,
        frame,
        name,
        version,
        out,
        reference_sha256=tables.file_sha256(reference),
        model_format=fmt,
        categorical=categorical,
        boolean=boolean,
    )


def load_bundle(path: str | Path, *, allow_version_mismatch: bool = False) -> Bundle:
    """Verify and load a bundle directory; raise :class:`BundleError` on any mismatch."""
    root = Path(path)
    meta_path = root / MODEL_JSON
    if not meta_path.is_file():
        raise BundleError(f"{meta_path}: missing; not a model bundle")
    raw = meta_path.read_bytes()
    meta = ModelMeta.loads(raw, meta_path)
    est_meta, ref_meta = meta.estimator, meta.reference
    verify_file(root / est_meta.file, est_meta.sha256)
    verify_file(root / ref_meta.file, ref_meta.sha256)
    try:
        libraries.check(meta.versions, allow_version_mismatch, meta_path)
    except libraries.LibraryError as exc:
        raise BundleError(str(exc)) from None
    estimator = _load_estimator(root / est_meta.file, est_meta.format)
    schema = meta.features
    names = schema.names
    _check_features(estimator, names, where=str(meta_path))
    if meta.is_classifier:
        actual = [_plain(c) for c in getattr(estimator, "classes_", [])]
        if meta.classes is None or actual != list(meta.classes):
            recorded = None if meta.classes is None else list(meta.classes)
            raise BundleError(
                f"{meta_path}: classes {recorded} do not match the estimator's {actual}"
            )
    reference = orjson.loads((root / ref_meta.file).read_bytes())
    try:
        feature_bins = [drift.feature_bins_from_json(reference["features"][n]) for n in names]
    except KeyError as exc:
        raise BundleError(f"{root / ref_meta.file}: no reference bins for {exc}") from None
    pred = reference.get("predictions")
    pred_bins: drift.CategoricalBins | drift.NumericBins | None
    if pred is None:
        pred_bins = None
    elif "categories" in pred:
        pred_bins = drift.CategoricalBins.from_json(pred)
    else:
        pred_bins = drift.NumericBins.from_json(pred)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    return Bundle(root, meta, estimator, feature_bins, pred_bins, digest, schema)


def reference_schema(
    frame: Any, categorical: Sequence[str] = (), boolean: Sequence[str] = ()
) -> Schema:
    """Per column: kind (inferred from the dtype unless overridden), dtype, missing, categories."""
    unknown = [c for c in (*categorical, *boolean) if c not in frame.columns]
    if unknown:
        raise BundleError(f"reference data has no columns {unknown} (it has {list(frame.columns)})")
    features = []
    for name in frame.columns:
        col = frame[name]
        kind = (
            CATEGORICAL
            if name in categorical
            else BOOLEAN
            if name in boolean
            else schema_mod.infer_kind(col.dtype)
        )
        present = col.dropna()
        if kind == BOOLEAN and not all(isinstance(v, bool | np.bool_) for v in present):
            raise BundleError(
                f"reference column {name!r} is declared boolean but holds non-booleans"
            )
        categories: tuple = ()
        if kind == CATEGORICAL and str(col.dtype) == "category":
            # the dtype's own categories, in its order: serving rebuilds exactly this dtype
            categories = tuple(_plain(v) for v in col.cat.categories)
        elif kind == CATEGORICAL:
            categories = tuple(sorted({_plain(v) for v in present}, key=_category_order))
        features.append(
            Feature(str(name), kind, str(col.dtype), bool(col.isna().any()), categories)
        )
    return Schema(tuple(features))


def _category_order(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


def _feature_bins(feature: Feature, column: Any) -> drift.FeatureBins:
    if feature.kind == NUMERIC:
        return drift.quantile_bins(column.to_numpy(dtype=float, na_value=np.nan), N_BINS)
    present = [_plain(v) for v in column.dropna()]
    return drift.category_shares(present, TOP_CATEGORIES)


def _reference_predictions(estimator: Any, frame: Any, data: np.ndarray | None) -> np.ndarray:
    """Predictions on the reference (rows with missing values dropped if the model refuses them)."""
    x = data if data is not None else frame
    try:
        return np.asarray(estimator.predict(x))
    except Exception as exc:
        complete = frame.notna().all(axis=1).to_numpy()
        if not complete.any():
            raise BundleError(f"the estimator cannot predict the reference data: {exc!r}") from None
        try:
            subset = data[complete] if data is not None else frame[complete]
            return np.asarray(estimator.predict(subset))
        except Exception:
            raise BundleError(f"the estimator cannot predict the reference data: {exc!r}") from None


def _data_sha256(frame: Any, data: np.ndarray | None) -> str:
    if data is not None:
        return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
    return tables.frame_sha256(frame)


def verify_file(path: Path, expected: str) -> None:
    if not path.is_file():
        raise BundleError(f"{path}: missing (model.json lists it with sha256 {expected})")
    actual = tables.file_sha256(path)
    if actual != expected:
        raise BundleError(
            f"{path}: sha256 mismatch: model.json says {expected}, the file has {actual}"
        )


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


def _check_numeric_input(estimator: Any, schema: Schema) -> None:
    """An estimator fitted on a bare array only takes numbers: name the columns it cannot."""
    if getattr(estimator, "feature_names_in_", None) is not None or schema.all_numeric:
        return
    other = [f"{f.name} ({f.kind})" for f in schema.features if f.kind != NUMERIC]
    raise BundleError(
        f"reference columns {other} are not numeric, but the estimator was fitted on a "
        "numeric array (it has no feature_names_in_): fit it on a DataFrame, e.g. in a "
        "Pipeline with a ColumnTransformer that encodes these columns"
    )


def _reference_frame(reference: Any, feature_names: list[str] | None) -> tuple[Any, Any]:
    """(DataFrame, float matrix or None): arrays keep the float matrix for the fast path."""
    import pandas as pd

    if isinstance(reference, pd.DataFrame):
        frame = reference.copy(deep=False)
        frame.columns = [str(c) for c in frame.columns]
        return frame, None
    data = np.asarray(reference, dtype=float)
    if feature_names is None:
        raise BundleError("reference is an array: pass feature_names")
    names = list(feature_names)
    if data.ndim != 2 or data.shape[1] != len(names):
        raise BundleError(
            f"reference data has shape {data.shape}, expected (rows, {len(names)}) for {names}"
        )
    return pd.DataFrame(data, columns=names, copy=False), data


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
