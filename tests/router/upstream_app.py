"""A predictor-shaped upstream for the router's process tests and benchmark.

It answers the three inference shapes of the predictor (OIP v2, KServe v1,
/predict) with deterministic predictions derived from each row's first value
(the row id), so a test knows the right answer for every row. Flags make it
slow, failing, or disagree with the reference model on a known share of rows,
which is how the shadow comparison is checked. `/_stats` reports what it
received. Run: python upstream_app.py --port P --name stable [...]
"""

from __future__ import annotations

import argparse
import asyncio
import collections

import orjson
import uvicorn

LABELS = ("setosa", "versicolor", "virginica")


def rows_of(doc: dict) -> list[list[float]]:
    if "inputs" in doc:
        tensor = doc["inputs"][0]
        data, shape = tensor["data"], tensor.get("shape") or [len(tensor["data"])]
        width = shape[1] if len(shape) > 1 else 1
        return [data[i : i + width] for i in range(0, len(data), width)]
    return doc["instances"]


class Upstream:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.count = 0
        self.paths: collections.Counter[str] = collections.Counter()
        self.request_ids: list[str] = []
        self.keys: list[str] = []

    def predict(self, row: list[float]) -> object:
        row_id = int(row[0])
        differs = row_id % 100 < self.args.disagree_percent
        if self.args.kind == "regressor":
            value = row_id * 0.5 + 1.0
            return value + self.args.offset if differs else value
        return LABELS[(row_id + (1 if differs else 0)) % len(LABELS)]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/_stats":
            stats = {
                "count": self.count,
                "paths": dict(self.paths),
                "request_ids": self.request_ids,
                "keys": self.keys,
            }
            return await self.reply(send, 200, stats)
        if path in ("/v2/health/live", "/v2/health/ready"):
            return await self.reply(send, 200, {"live": True})
        self.count += 1
        self.paths[path] += 1
        headers = dict(scope["headers"])
        self.request_ids.append(headers.get(b"x-request-id", b"").decode())
        self.keys.append(headers.get(b"x-modeldeploy-key", b"").decode())
        if self.args.delay:
            await asyncio.sleep(self.args.delay)
        if self.args.status != 200:
            return await self.reply(send, self.args.status, {"error": "made to fail"})
        try:
            doc = orjson.loads(body)
            preds = [self.predict(r) for r in rows_of(doc)]
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError, ValueError) as exc:
            return await self.reply(send, 422, {"error": f"bad request: {exc!r}"})
        a = self.args
        if path.startswith("/v2/models/"):
            datatype = "FP64" if a.kind == "regressor" else "BYTES"
            out = {
                "model_name": a.model,
                "model_version": a.version,
                "outputs": [
                    {"name": "predict", "shape": [len(preds)], "datatype": datatype, "data": preds}
                ],
            }
        else:
            out = {"predictions": preds, "model_version": a.version}
        await self.reply(send, 200, out)

    async def reply(self, send, status: int, doc: dict) -> None:
        body = orjson.dumps(doc)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-upstream", self.args.name.encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", default="stable", help="echoed in the x-upstream header")
    p.add_argument("--model", default="iris")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--kind", choices=["classifier", "regressor"], default="classifier")
    p.add_argument(
        "--disagree-percent",
        type=int,
        default=0,
        help="rows whose id %% 100 is below this get a different answer",
    )
    p.add_argument("--offset", type=float, default=1.0, help="regressor: added to those rows")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    p.add_argument("--status", type=int, default=200, help="answer every request with this")
    args = p.parse_args()
    uvicorn.run(
        Upstream(args),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
