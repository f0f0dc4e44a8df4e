"""`/healthz`, `/metrics` and `/loadtest` on one small aiohttp server (aiohttp comes with Kopf).

Liveness answers from the operator's own event loop, so a wedged loop fails
the probe; `/metrics` exposes the `modeldeploy_operator_*` series.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modeldeploy_operator.gates.loadgen import PATH as loadgen_path
from modeldeploy_operator.gates.loadgen import LoadGenerator


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _metrics(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


async def start(host: str, port: int, loadgen: LoadGenerator | None = None) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    if loadgen is not None:  # the built-in load generator, a webhook target (gates/loadgen.py)
        app.router.add_post(loadgen_path, loadgen.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
