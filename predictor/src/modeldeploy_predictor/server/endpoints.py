"""HTTP specifics of each endpoint: body limits, content type, errors, response encoding.

Inference handlers take the raw ``Request`` and return a raw ``Response``
rendered by orjson (NumPy arrays serialised natively): the body goes from
bytes to NumPy in one pass, with no pydantic model on the hot path. The request
schemas still appear in the OpenAPI document through ``openapi_extra``.

Every failure is a JSON body: client mistakes are 4xx naming the field, the
expected and the received value; a model exception is a 500 naming its class.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from fastapi import Request
from fastapi.responses import Response

from .. import binary, feedback, mixed, parsing
from ..dataplane import DataPlane, ModelError, NotReady

log = logging.getLogger(__name__)
# Bodies past this size are decoded and parsed in a worker thread, off the event loop.
BIG_BODY = 1 << 20

JSON = "application/json"
_DUMP = orjson.OPT_SERIALIZE_NUMPY
_ids = itertools.count(1)
_ID_PREFIX = os.urandom(4).hex()


def new_request_id() -> str:
    return f"{_ID_PREFIX}-{next(_ids)}"


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(payload, option=_DUMP), status, headers, media_type=JSON)


class Endpoints:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dp = dataplane
        self.limit = dataplane.settings.max_body_bytes
        self._pred_type = dataplane.metadata()["outputs"][0]["datatype"]
        self.schema = dataplane.model.schema
        self.mixed = not self.schema.all_numeric  # else the float-matrix fast path

    # ----- health and metadata -------------------------------------------------

    async def live(self) -> Response:
        return json_response({"live": True})

    async def ready(self) -> Response:
        return json_response({"ready": self.dp.ready}, 200 if self.dp.ready else 503)

    async def server_metadata(self) -> Response:
        from importlib.metadata import version

        return json_response(
            {
                "name": "modeldeploy-predictor",
                "version": version("modeldeploy-predictor"),
                "extensions": [],
            }
        )

    async def model_metadata(self, name: str, version: str | None = None) -> Response:
        error = self._check_model(name, version)
        return error or json_response(self.dp.metadata())

    async def model_ready(self, name: str, version: str | None = None) -> Response:
        error = self._check_model(name, version)
        if error is not None:
            return error
        return json_response(
            {"name": self.dp.name, "ready": self.dp.ready}, 200 if self.dp.ready else 503
        )

    async def metrics(self) -> Response:
        body = self.dp.metrics.exposition()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    def _check_model(self, name: str, version: str | None) -> Response | None:
        if name != self.dp.name:
            err = parsing.InputError(
                "model_not_found",
                f"model {name!r} is not served here",
                "name",
                self.dp.name,
                name,
                404,
            )
            return json_response(err.body(), 404)
        if version is not None and version != self.dp.version:
            err = parsing.InputError(
                "version_not_found",
                f"model {name!r} has no version {version!r}",
                "version",
                self.dp.version,
                version,
                404,
            )
            return json_response(err.body(), 404)
        return None

    # ----- inference -------------------------------------------------------------

    async def v2_infer(self, name: str, request: Request, version: str | None = None) -> Response:
        return await self._infer(
            request, "v2_infer", name, version, self._v2_parse, self._v2_render
        )

    async def v1_predict(self, name: str, request: Request) -> Response:
        return await self._infer(request, "v1_predict", name, None, self._v1_parse, self._v1_render)

    async def predict(self, request: Request) -> Response:
        return await self._infer(
            request, "predict", None, None, self._plain_parse, self._plain_render
        )

    async def _infer(
        self,
        request: Request,
        endpoint: str,
        name: str | None,
        version: str | None,
        parse: Callable[[Any, bool], tuple[Any, bool, Any]],
        render: Callable[[np.ndarray, np.ndarray | None, Any, str], Any],
    ) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or new_request_id()
        headers = {"x-request-id": request_id}
        dp = self.dp
        response: Response | None = None
        if name is not None:
            response = self._check_model(name, version)
        if response is None:
            try:
                binary_header = request.headers.get(binary.HEADER) if name is not None else None
                body = await self._read_body(request, binary_header is not None)
                json_size = binary.header_length(binary_header, len(body))
                # No "true"/"false" anywhere in the bytes: no boolean can hide among numbers.
                bools = b"true" in body or b"false" in body

                def decode() -> tuple[Any, bool, Any]:
                    if json_size is None:
                        return parse(parsing.loads(body), bools)
                    return parse(binary.request(body, json_size), bools)

                if len(body) > BIG_BODY:
                    x, want_proba, extra = await asyncio.to_thread(decode)
                else:
                    x, want_proba, extra = decode()
                pred, proba = await dp.predict(x, want_proba)
                out = render(pred, proba, extra, request_id)
                if isinstance(out, Response):  # binary tensor data: a header, then bytes
                    out.headers["x-request-id"] = request_id
                    response = out
                else:
                    response = json_response(out, 200, headers)
                dp.log_prediction(request_id, endpoint, x, pred, started)
                dp.remember(request_id, pred)
            except parsing.InputError as exc:
                dp.metrics.input_error(exc.reason)
                response = json_response(exc.body(), exc.status, headers)
            except ModelError as exc:
                response = json_response(
                    {
                        "error": f"the model raised {exc}",
                        "reason": "model_error",
                        "error_class": exc.error_class,
                    },
                    500,
                    headers,
                )
            except NotReady as exc:
                response = json_response({"error": str(exc), "reason": "not_ready"}, 503, headers)
            except Exception as exc:  # a bug of ours: still a JSON answer, counted, logged
                log.exception("request %s failed", request_id)
                response = json_response(
                    {
                        "error": f"internal error: {type(exc).__name__}",
                        "reason": "internal_error",
                        "error_class": type(exc).__name__,
                    },
                    500,
                    headers,
                )
        dp.metrics.request(endpoint, response.status_code, time.perf_counter() - started)
        return response

    # ----- ground-truth feedback ---------------------------------------------------

    async def v2_feedback(self, name: str, request: Request) -> Response:
        """Outcomes for earlier predictions, judged by the pod that made them.

        Always 200 for a well-formed body: each outcome says recorded, unknown
        (not predicted here, or forgotten) or invalid (the router asks every
        pod and merges, docs/router.md)."""
        error = self._check_model(name, None)
        if error is not None:
            return error
        try:
            body = await self._read_body(request)
            outcomes = feedback.parse_outcomes(
                parsing.loads(body), request.headers.get("x-request-id")
            )
        except parsing.InputError as exc:
            return json_response(exc.body(), exc.status)
        except feedback.FeedbackError as exc:
            return json_response({"error": str(exc), "reason": "bad_feedback"}, 400)
        judged = self.dp.judge_outcomes(outcomes)
        return json_response(
            {
                "recorded": sum(j.result == feedback.RECORDED for j in judged),
                "outcomes": [j.to_json() for j in judged],
            }
        )

    async def _read_body(self, request: Request, binary_data: bool = False) -> bytes:
        ctype = request.headers.get("content-type")
        if ctype is not None:
            media = ctype.split(";", 1)[0].strip().lower()
            octets = binary_data and media == "application/octet-stream"
            if media != JSON and not media.endswith("+json") and not octets:
                raise parsing.InputError(
                    "content_type",
                    f"content type {media!r} is not supported",
                    "content-type",
                    JSON,
                    media,
                    415,
                )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            raise self._too_large(int(declared))
        if declared is not None:
            return await request.body()
        chunks, size = [], 0
        async for chunk in request.stream():  # chunked upload: count as it arrives
            size += len(chunk)
            if size > self.limit:
                raise self._too_large(size)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, size: int) -> parsing.InputError:
        return parsing.InputError(
            "too_large",
            f"request body of {size} bytes exceeds the limit of {self.limit} bytes",
            "body",
            f"<= {self.limit} bytes",
            f"{size} bytes",
            413,
        )

    # ----- protocol codecs ---------------------------------------------------------

    def _v2_parse(self, doc: Any, bools: bool) -> tuple[Any, bool, Any]:
        x: Any  # Columns for mixed-type rows, else a float matrix
        if self.mixed:
            x, wanted, req_id = mixed.v2_request(doc, self.schema)
        else:
            x, wanted, req_id = parsing.v2_request(doc, self.dp.model.feature_names, bools)
        return (
            x,
            not wanted or "predict_proba" in wanted,
            (wanted, req_id, binary.wants_binary(doc)),
        )

    def _v2_render(self, pred: np.ndarray, proba: np.ndarray | None, extra: Any, rid: str) -> Any:
        wanted, req_id, binary_outputs = extra
        outputs = [
            {
                "name": "predict",
                "shape": [pred.shape[0]],
                "datatype": self._pred_type,
                "data": _data(pred),
            }
        ]
        if proba is not None:
            outputs.append(
                {
                    "name": "predict_proba",
                    "shape": list(proba.shape),
                    "datatype": "FP64",
                    "data": proba.ravel(),
                }
            )
        if wanted:
            outputs = [o for o in outputs if o["name"] in wanted] or outputs
        doc = {
            "model_name": self.dp.name,
            "model_version": self.dp.version,
            "id": req_id if isinstance(req_id, str) else rid,
            "outputs": outputs,
        }
        if not binary_outputs:
            return doc
        raw = [
            binary.encode(o)
            for o in outputs
            if binary_outputs is True or o["name"] in binary_outputs
        ]
        head = orjson.dumps(doc, option=_DUMP)
        return Response(
            head + b"".join(raw),
            200,
            {binary.HEADER: str(len(head))},
            media_type="application/octet-stream",
        )

    def _v1_parse(self, doc: Any, bools: bool) -> tuple[Any, bool, Any]:
        if self.mixed:
            return mixed.v1_request(doc, self.schema), False, None
        return parsing.v1_request(doc, self.dp.model.feature_names, bools), False, None

    def _v1_render(self, pred: np.ndarray, proba: np.ndarray | None, extra: Any, rid: str) -> Any:
        return {"predictions": _data(pred)}

    def _plain_parse(self, doc: Any, bools: bool) -> tuple[Any, bool, Any]:
        if self.mixed:
            return mixed.predict_request(doc, self.schema), True, None
        return parsing.predict_request(doc, self.dp.model.feature_names, bools), True, None

    def _plain_render(
        self, pred: np.ndarray, proba: np.ndarray | None, extra: Any, rid: str
    ) -> Any:
        out: dict[str, Any] = {
            "model": self.dp.name,
            "version": self.dp.version,
            "request_id": rid,
            "predictions": _data(pred),
        }
        if proba is not None:
            out["classes"] = self.dp.model.classes
            out["probabilities"] = proba
        return out


def _data(arr: np.ndarray) -> Any:
    """NumPy numbers go to orjson as arrays (fast); strings and objects as lists."""
    return arr if arr.dtype.kind in "biuf" else arr.tolist()
