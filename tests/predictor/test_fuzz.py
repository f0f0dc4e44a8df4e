"""Hypothesis fuzzing of the inference endpoints of a running server: never a 5xx."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modeldeploy_predictor.parsing import DATATYPES

ENDPOINTS = ["/v2/models/cancer/infer", "/v1/models/cancer:predict", "/predict"]
FEATURE = st.sampled_from(["mean_radius", "worst_area", "input-0", "x", ""])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=1e38, max_value=1e308),  # overflows FP32
    st.text(max_size=8),
    st.sampled_from(["nan", "inf", "-inf", "1.5", "1e400"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=40,
)
shapes = st.lists(st.integers(min_value=-2, max_value=40), max_size=3)
tensor = st.fixed_dictionaries(
    {
        "name": FEATURE,
        "shape": shapes | json_values,
        "datatype": st.sampled_from([*DATATYPES, "BOOL", "STRING", 3]),
        "data": st.lists(scalars, max_size=64)
        | st.lists(st.lists(scalars, max_size=31), max_size=3)
        | json_values,
    }
)
v2_bodies = st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=3)}) | json_values
v1_bodies = st.fixed_dictionaries(
    {"instances": st.lists(st.lists(scalars, min_size=0, max_size=31), max_size=3) | json_values}
)
record_bodies = st.lists(st.dictionaries(FEATURE, scalars, max_size=4), max_size=3) | json_values
raw_bodies = st.binary(max_size=64)

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def client(cancer_server):
    with httpx.Client(base_url=cancer_server.url, timeout=30) as c:
        yield c


def _post(client: httpx.Client, path: str, body: bytes) -> None:
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, (path, body[:300], r.text[:300])
    if r.status_code >= 400:
        assert r.json()["error"]


@FUZZ
@given(body=v2_bodies)
def test_fuzz_v2(client, body):
    _post(client, ENDPOINTS[0], json.dumps(body).encode())


@FUZZ
@given(body=v1_bodies | json_values)
def test_fuzz_v1(client, body):
    _post(client, ENDPOINTS[1], json.dumps(body).encode())


@FUZZ
@given(body=record_bodies)
def test_fuzz_predict(client, body):
    _post(client, ENDPOINTS[2], json.dumps(body).encode())


@FUZZ
@given(path=st.sampled_from(ENDPOINTS), body=raw_bodies)
def test_fuzz_raw_bytes(client, path, body):
    _post(client, path, body)


def test_server_still_healthy_after_fuzzing(client):
    assert client.get("/v2/health/ready").status_code == 200


# ----- a mixed-type schema (numbers, strings, booleans, missing values) -----

MIXED_NAMES = ["age", "income", "city", "channel", "member", "plan", "x"]
MIXED_ENDPOINTS = ["/v2/models/churn/infer", "/v1/models/churn:predict", "/predict"]
MIXED_FEATURE = st.sampled_from(MIXED_NAMES)
mixed_scalars = scalars | st.sampled_from(["paris", "nice", "pro", "web", "", "\u00e9t\u00e9"])
column_values = st.lists(mixed_scalars | st.lists(mixed_scalars, max_size=2), max_size=6)
mixed_tensor = st.fixed_dictionaries(
    {
        "name": MIXED_FEATURE,
        "shape": st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=2)
        | shapes
        | json_values,
        "datatype": st.sampled_from(["BYTES", "BOOL", "FP64", "INT64", "FP32", "STRING"]),
        "data": column_values | json_values,
    }
)
mixed_records = st.lists(
    st.dictionaries(MIXED_FEATURE, mixed_scalars | json_values, min_size=5, max_size=8), max_size=3
)
# Complete rows whose values are mostly plausible: reaches the per-column checks and predict.
PLAUSIBLE = {
    "age": st.integers(0, 120),
    "income": st.floats(-1e6, 1e6) | st.none(),
    "tenure": st.floats(0, 200),
    "balance": st.floats(0, 1e9),
    "score": st.floats(-5, 5),
    "city": st.sampled_from(["paris", "lyon", "nice", "lille", "rome"]),
    "plan": st.sampled_from(["basic", "pro", "team"]),
    "channel": st.sampled_from(["web", "shop", "phone", None]),
    "member": st.booleans(),
}
full_rows = st.fixed_dictionaries({k: v | mixed_scalars for k, v in PLAUSIBLE.items()})
mixed_records = mixed_records | st.lists(full_rows, min_size=1, max_size=4)
mixed_bodies = {
    "/v2/models/churn/infer": st.fixed_dictionaries({"inputs": st.lists(mixed_tensor, max_size=9)}),
    "/v1/models/churn:predict": st.fixed_dictionaries(
        {"instances": mixed_records | st.lists(st.lists(mixed_scalars, max_size=10), max_size=3)}
    ),
    "/predict": mixed_records
    | st.fixed_dictionaries({"columns": st.dictionaries(MIXED_FEATURE, column_values, max_size=9)}),
}


@pytest.fixture(scope="module")
def mixed_client(mixed_server):
    with httpx.Client(base_url=mixed_server.url, timeout=30) as c:
        yield c


@FUZZ
@given(data=st.data(), path=st.sampled_from(MIXED_ENDPOINTS))
def test_fuzz_mixed_schema(mixed_client, data, path):
    body = data.draw(mixed_bodies[path] | json_values)
    _post(mixed_client, path, json.dumps(body).encode())


@FUZZ
@given(path=st.sampled_from(MIXED_ENDPOINTS), body=raw_bodies)
def test_fuzz_mixed_raw_bytes(mixed_client, path, body):
    _post(mixed_client, path, body)


def test_mixed_server_still_healthy_after_fuzzing(mixed_client):
    assert mixed_client.get("/v2/health/ready").status_code == 200
