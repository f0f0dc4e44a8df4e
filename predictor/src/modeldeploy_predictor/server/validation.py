"""`GET /v2/models/{name}/validation`: the bundle's validation set, for the operator.

The operator replays these rows against the candidate and the stable revision
before the candidate gets traffic (strategy.validation). Read and verified
against model.json once, on first request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi.responses import Response

from .. import validation_set
from ..dataplane import DataPlane

JSON = "application/json"


def handler(dataplane: DataPlane) -> Callable[[str], Awaitable[Response]]:
    cache: dict[str, bytes] = {}

    async def validation(name: str) -> Response:
        if name != dataplane.name:
            return _error(404, "model_not_found", f"model {name!r} is not served here")
        if "body" not in cache:
            bundle = dataplane.model.bundle
            doc: dict[str, Any] | None = validation_set.load(bundle.path, bundle.meta)
            cache["body"] = b"" if doc is None else orjson.dumps(doc)
        if not cache["body"]:
            return _error(404, "no_validation_set", f"the bundle of {name!r} has no validation set")
        return Response(cache["body"], media_type=JSON)

    return validation


def _error(status: int, code: str, message: str) -> Response:
    return Response(orjson.dumps({"error": message, "reason": code}), status, media_type=JSON)
