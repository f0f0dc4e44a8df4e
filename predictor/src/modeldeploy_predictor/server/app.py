"""``create_app``: routes only, plus the lifespan that warms the model up and drains it.

uvicorn stops accepting connections on SIGTERM and waits for in-flight
requests (``--graceful-timeout``); the lifespan shutdown runs after that and
drains the batcher and the prediction log.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Route

from ..dataplane import DataPlane
from . import schemas, validation
from .endpoints import Endpoints


def create_app(dataplane: DataPlane) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await dataplane.start()
        try:
            yield
        finally:
            await dataplane.stop()

    app = FastAPI(
        title="modeldeploy predictor",
        description=(
            "Serves one scikit-learn model bundle over the Open Inference Protocol v2, "
            "KServe v1 and a plain /predict; Prometheus metrics on /metrics."
        ),
        lifespan=lifespan,
    )
    ep = Endpoints(dataplane)
    errors = schemas.error_responses()

    def route(method: str, path: str, handler: Any, summary: str, tag: str, body: Any = None):
        extra: dict[str, Any] = {}
        if body is not None:
            content = {"application/json": {"schema": body}}
            extra["responses"] = errors
            extra["openapi_extra"] = {"requestBody": {"required": True, "content": content}}
        app.add_api_route(
            path,
            handler,
            methods=[method],
            summary=summary,
            tags=[tag],
            response_class=Response,
            **extra,
        )

    def get(path: str, handler: Any, summary: str, tag: str) -> None:
        route("GET", path, handler, summary, tag)

    fast_routes: list[Route] = []

    def post(path: str, handler: Any, summary: str, tag: str, body: dict) -> None:
        route("POST", path, handler, summary, tag, body)

        # The same handler as a plain Starlette route, matched first: it skips FastAPI's
        # per-request parameter solving. The APIRoute above stays for the OpenAPI document.
        async def fast(request: Request) -> Response:
            return await handler(request=request, **request.path_params)

        fast_routes.append(Route(path, fast, methods=["POST"], include_in_schema=False))

    get("/v2/health/live", ep.live, "Liveness", "health")
    get("/v2/health/ready", ep.ready, "Readiness (model loaded and warmed up)", "health")
    get("/v2", ep.server_metadata, "Server metadata", "v2")
    get("/v2/models/{name}", ep.model_metadata, "Model metadata", "v2")
    get("/v2/models/{name}/versions/{version}", ep.model_metadata, "Model version metadata", "v2")
    get("/v2/models/{name}/ready", ep.model_ready, "Model readiness", "v2")
    get(
        "/v2/models/{name}/versions/{version}/ready",
        ep.model_ready,
        "Model version readiness",
        "v2",
    )
    post(
        "/v2/models/{name}/infer",
        ep.v2_infer,
        "Inference (Open Inference Protocol v2)",
        "v2",
        schemas.V2_REQUEST,
    )
    post(
        "/v2/models/{name}/versions/{version}/infer",
        ep.v2_infer,
        "Inference on a version (Open Inference Protocol v2)",
        "v2",
        schemas.V2_REQUEST,
    )
    post(
        "/v2/models/{name}/feedback",
        ep.v2_feedback,
        "Ground-truth outcomes of earlier predictions (modeldeploy extension)",
        "v2",
        schemas.FEEDBACK_REQUEST,
    )
    get("/v1/models/{name}", ep.model_ready, "Model status (KServe v1)", "v1")
    post(
        "/v1/models/{name}:predict",
        ep.v1_predict,
        "Prediction (KServe v1)",
        "v1",
        schemas.V1_REQUEST,
    )
    post(
        "/predict", ep.predict, "Prediction from records or columns", "plain", schemas.PLAIN_REQUEST
    )
    get("/metrics", ep.metrics, "Prometheus metrics", "metrics")
    get(
        "/v2/models/{name}/validation",
        validation.handler(dataplane),
        "The bundle's validation set (modeldeploy extension, for the operator)",
        "v2",
    )
    app.router.routes[:0] = fast_routes
    app.state.dataplane = dataplane
    return app
