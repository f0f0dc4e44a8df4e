"""A bundle's ``model.json`` as one typed, frozen value.

Parsed (and its format version checked) here only; every other module reads
fields of :class:`ModelMeta` instead of indexing the JSON by string keys.
Top-level keys this version does not know are kept in ``extra`` and written
back unchanged, so rewriting ``model.json`` (attaching a validation set) loses
nothing a newer tool added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .schema import Schema

# 2 added per-feature kind, missing and categories (format 1 bundles, all-numeric, still
# load). A bundle of any other format is refused with a message naming both.
FORMAT = 2
READABLE_FORMATS = (1, 2)
CLASSIFIER, REGRESSOR = "classifier", "regressor"
_REQUIRED = ("name", "version", "task", "features", "estimator", "reference", "versions")


class BundleError(Exception):
    """A bundle cannot be written or loaded; the message names the file and the problem."""


@dataclass(frozen=True)
class EstimatorFile:
    file: str
    sha256: str
    format: str = "joblib"  # or "skops"
    class_name: str | None = None  # "<module>.<qualname>" of the fitted estimator

    def to_json(self) -> dict[str, Any]:
        out = {"file": self.file, "format": self.format}
        if self.class_name is not None:
            out["class"] = self.class_name
        return {**out, "sha256": self.sha256}


@dataclass(frozen=True)
class ReferenceFile:
    file: str
    sha256: str
    data_sha256: str = ""  # of the data file the reference was computed from
    rows: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "data_sha256": self.data_sha256,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class ValidationFile:
    file: str
    sha256: str
    rows: int = 0
    labels: bool = False
    data_sha256: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "rows": self.rows,
            "labels": self.labels,
            "data_sha256": self.data_sha256,
        }


@dataclass(frozen=True)
class ModelMeta:
    name: str
    version: str
    task: str
    features: Schema
    estimator: EstimatorFile
    reference: ReferenceFile
    versions: Mapping[str, str]  # library -> version the bundle was made with
    classes: tuple[Any, ...] | None = None  # classifiers only
    validation: ValidationFile | None = None
    created: str | None = None
    format: int = FORMAT
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys unknown to this version

    @property
    def is_classifier(self) -> bool:
        return self.task == CLASSIFIER

    def files(self) -> dict[str, str]:
        """Every file the bundle holds besides model.json -> its sha256."""
        out = {self.estimator.file: self.estimator.sha256}
        out[self.reference.file] = self.reference.sha256
        if self.validation is not None:
            out[self.validation.file] = self.validation.sha256
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "classes": None if self.classes is None else list(self.classes),
            "features": self.features.to_json(),
            "estimator": self.estimator.to_json(),
            "reference": self.reference.to_json(),
            "versions": dict(self.versions),
        }
        if self.validation is not None:
            out["validation"] = self.validation.to_json()
        if self.created is not None:
            out["created"] = self.created
        return {**out, **self.extra}

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, doc: Any, where: object = "model.json") -> ModelMeta:
        """Check the format version first, then every field; BundleError names `where`."""
        if not isinstance(doc, dict):
            raise BundleError(f"{where}: not a JSON object")
        fmt = doc.get("format")
        if fmt not in READABLE_FORMATS:
            raise BundleError(
                f"{where}: bundle format {fmt!r} is not supported by this predictor "
                f"(it reads formats {list(READABLE_FORMATS)}); rebuild the bundle with "
                "this version's modeldeploy-predictor bundle, or upgrade the predictor"
            )
        for key in _REQUIRED:
            if key not in doc:
                raise BundleError(f"{where}: field {key!r} missing")
        try:
            features = Schema.from_json(doc["features"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{where}: invalid features: {exc!r}") from None
        try:
            est, ref, val = doc["estimator"], doc["reference"], doc.get("validation")
            classes = doc.get("classes")
            return cls(
                name=str(doc["name"]),
                version=str(doc["version"]),
                task=str(doc["task"]),
                features=features,
                estimator=EstimatorFile(
                    est["file"], est["sha256"], est.get("format", "joblib"), est.get("class")
                ),
                reference=ReferenceFile(
                    ref["file"],
                    ref["sha256"],
                    ref.get("data_sha256", ""),
                    int(ref.get("rows", 0)),
                ),
                versions={str(k): str(v) for k, v in doc["versions"].items()},
                classes=None if classes is None else tuple(classes),
                validation=None
                if not val
                else ValidationFile(
                    val["file"],
                    val["sha256"],
                    int(val.get("rows", 0)),
                    bool(val.get("labels", False)),
                    val.get("data_sha256", ""),
                ),
                created=doc.get("created"),
                format=fmt,
                extra={k: v for k, v in doc.items() if k not in _KNOWN},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{where}: not a bundle's model.json ({exc!r})") from None

    @classmethod
    def loads(cls, raw: bytes, where: object = "model.json") -> ModelMeta:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BundleError(f"{where}: not valid JSON ({exc})") from None
        return cls.from_json(doc, where)


_KNOWN = {*_REQUIRED, "format", "classes", "validation", "created"}
