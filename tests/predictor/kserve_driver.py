"""Drive the predictor with KServe's REST client, as its users call it; run in the kserve venv.

Reads JSON jobs on stdin, one a line, and answers each with one JSON line on stdout
(kserve takes seconds to import: one process serves a whole test session). Job:
``{"url", "model", "protocol": "v1" | "v2", "binary": bool, "binary_outputs": bool,
"inputs": [{"name", "datatype", "shape", "data"}], "outputs": [names], "body": {...}}``.
v2 builds ``InferInput``s with ``set_data_from_numpy`` (``binary`` picks the binary
tensor extension, kserve's default) into an ``InferRequest``; v1 posts ``body``
(``{"instances": [...]}``) through the same client. Output: readiness, and each
output as a list (bytes decoded) or the v1 document; a failure is ``{"error": text}``.

Kept free of the test suite's imports: it runs with kserve's own dependency set.
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

NUMPY = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_}


def to_numpy(spec: dict) -> np.ndarray:
    if spec["datatype"] == "BYTES":
        return np.array(spec["data"], dtype=object).reshape(spec["shape"])
    data = [np.nan if v is None else v for v in spec["data"]]
    return np.array(data, dtype=NUMPY[spec["datatype"]]).reshape(spec["shape"])


def plain(values: np.ndarray) -> list:
    return [v.decode() if isinstance(v, bytes) else v for v in values.ravel().tolist()]


async def run(job: dict) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol=job["protocol"], retries=0, timeout=30))
    try:
        ready = await client.is_model_ready(job["url"], job["model"])
        if job["protocol"] == "v1":
            answer = await client.infer(job["url"], job["body"], model_name=job["model"])
            return {"ready": ready, "answer": answer}
        inputs = []
        for spec in job["inputs"]:
            tensor = InferInput(spec["name"], spec["shape"], spec["datatype"])
            tensor.set_data_from_numpy(to_numpy(spec), binary_data=job["binary"])
            inputs.append(tensor)
        wanted = [
            RequestedOutput(name, {"binary_data": True} if job["binary_outputs"] else None)
            for name in job["outputs"]
        ]
        request = InferRequest(job["model"], inputs, request_outputs=wanted)
        response = await client.infer(job["url"], request, model_name=job["model"])
        outputs = {out.name: plain(out.as_numpy()) for out in response.outputs}
        return {"ready": ready, "model": response.model_name, "outputs": outputs}
    finally:
        await client.close()


def main() -> None:
    for line in sys.stdin:
        try:
            answer = asyncio.run(run(json.loads(line)))
        except Exception as exc:  # reported to the test, which decides
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
