"""The minimal FastAPI baseline: a pydantic V2 request, ``estimator.predict``, a dict back.

What a hand-written model server typically looks like; the benchmark uses it as
the latency floor a serious server should stay close to at concurrency 1.
"""

from __future__ import annotations

import os

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

model = joblib.load(os.environ["BENCH_MODEL"])
app = FastAPI()


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list


class InferenceRequest(BaseModel):
    inputs: list[Tensor]


@app.get("/v2/health/ready")
async def ready() -> dict:
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: InferenceRequest) -> dict:
    tensor = request.inputs[0]
    x = np.asarray(tensor.data, dtype=np.float64).reshape(tensor.shape)
    pred = model.predict(x)
    return {
        "model_name": name,
        "outputs": [
            {"name": "predict", "shape": [len(pred)], "datatype": "FP64", "data": pred.tolist()}
        ],
    }
