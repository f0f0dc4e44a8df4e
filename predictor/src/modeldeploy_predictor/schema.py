"""The input schema of a bundle: per feature its name, kind, dtype, missing values, categories.

Typed and frozen, built once from ``model.json`` (or from a reference DataFrame
when a bundle is made) and then read by parsing, drift and the model wrapper,
so no other module indexes ``model.json`` by string keys.

Kinds: ``numeric`` (any real number), ``categorical`` (a value from a finite
set; strings, or numbers when a numeric column was declared categorical) and
``boolean`` (true / false only).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

NUMERIC, CATEGORICAL, BOOLEAN = "numeric", "categorical", "boolean"
KINDS = (NUMERIC, CATEGORICAL, BOOLEAN)


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str = NUMERIC
    dtype: str = "float64"  # the reference column's dtype, rebuilt for the estimator
    missing: bool = False  # the reference had missing values in this column
    categories: tuple[Any, ...] = ()  # categoricals: every value seen in the reference
    nullable: bool = False  # runtime: a null is a missing value (not stored)

    @cached_property  # read per request and column: computed once
    def string_values(self) -> bool:
        """Categorical values are strings unless every category seen is a number."""
        return self.kind == CATEGORICAL and not (
            self.categories
            and all(isinstance(c, int | float) and not isinstance(c, bool) for c in self.categories)
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "missing": self.missing,
        }
        if self.kind == CATEGORICAL:
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Feature:
        kind = doc.get("kind", NUMERIC)
        if kind not in KINDS:
            raise ValueError(f"feature {doc.get('name')!r}: unknown kind {kind!r}")
        return cls(
            name=str(doc["name"]),
            kind=kind,
            dtype=str(doc.get("dtype", "float64")),
            missing=bool(doc.get("missing", False)),
            categories=tuple(doc.get("categories") or ()),
        )


@dataclass(frozen=True)
class Schema:
    features: tuple[Feature, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def all_numeric(self) -> bool:
        """Served on the float64-matrix fast path."""
        return all(f.kind == NUMERIC for f in self.features)

    def with_nullable(self, estimator_allows_nan: bool) -> Schema:
        """Null is a missing value where the reference had some or the estimator takes NaN."""
        return Schema(
            tuple(replace(f, nullable=f.missing or estimator_allows_nan) for f in self.features)
        )

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.features]

    @classmethod
    def from_json(cls, docs: list[dict[str, Any]]) -> Schema:
        return cls(tuple(Feature.from_json(d) for d in docs))


def infer_kind(dtype: Any) -> str:
    """numeric / categorical / boolean from a pandas or NumPy dtype."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return BOOLEAN
    if isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC
    return CATEGORICAL
