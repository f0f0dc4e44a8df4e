"""A bundle from S3 with credentials from a Secret, on the local cluster.

moto (S3 + IAM, authentication enforced) runs in the test process on
127.0.0.1; the predictor pods reach it over loopback. v1 is served with the
keys from `spec.model.credentials.secretRef`; v2 comes with a Secret holding
a wrong key: its pods exit before serving, it never gets traffic, and the
rollback message names the store's error. (pvc:// needs volumes, which the
process-backed node does not mount: shown on kind.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import joblib
import numpy as np
import pytest
from cluster_helpers import GROUP, VERSION, Env, apply_crd
from kubernetes import client
from moto.moto_server import threaded_moto_server as moto_server
from sklearn import linear_model

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}],
    }
)


def make_bundle(tmp: Path, version: str) -> Path:
    from modeldeploy_predictor.bundle import bundle_from_files

    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 2))
    model = tmp / f"model-{version}.joblib"
    joblib.dump(linear_model.LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), model)
    reference = tmp / f"reference-{version}.csv"
    np.savetxt(reference, x, delimiter=",", header="f0,f1", comments="")
    return bundle_from_files(model, reference, "fraud", version, tmp / f"bundle-{version}")


@pytest.fixture
def store(tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    """moto with both bundles uploaded, then authentication switched on; yields the
    endpoint and a reader's keys."""
    server = moto_server.ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    admin = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin"}
    try:
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", **admin)
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=POLICY)
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **admin)
        s3.create_bucket(Bucket="models")
        for version in ("1.0.0", "2.0.0"):
            for path in make_bundle(tmp_path, version).iterdir():
                s3.upload_file(str(path), "models", f"fraud/{version}/{path.name}")
        httpx.post(url + "/moto-api/reset-auth", content=b"0").raise_for_status()
        yield (
            url,
            {
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            },
        )
    finally:
        httpx.post(url + "/moto-api/reset-auth", content=b"inf")  # this process's moto
        server.stop()


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    apply_crd(cluster.api_client())
    e = Env(cluster, namespace, cluster.prometheus_url)
    e.start_operator()
    yield e
    e.operator.close()


def secret(env: Env, name: str, data: dict[str, str]) -> None:
    client.CoreV1Api(env.api).create_namespaced_secret(
        env.namespace, {"metadata": {"name": name}, "stringData": data}
    )


def manifest(version: str, secret_name: str, cache: Path) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud"},
        "spec": {
            "model": {
                "name": "fraud",
                "version": version,
                "uri": f"s3://models/fraud/{version}/",
                "credentials": {"secretRef": {"name": secret_name}},
            },
            "predictor": {
                "image": "ghcr.io/modeldeploy/predictor:test",
                "replicas": 1,
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "predictor",
                                "env": [{"name": "XDG_CACHE_HOME", "value": str(cache)}],
                            }
                        ]
                    }
                },
            },
            "strategy": {
                "type": "Canary",
                "canary": {"steps": [{"weight": 50, "pause": "2s"}]},
                "analysis": {"interval": "1s", "metrics": []},
                "crashLoopRestarts": 1,
                "progressDeadline": "2m",
            },
        },
    }


def test_s3_bundle_with_secret_credentials_and_a_refused_key(env, store, tmp_path):
    url, keys = store
    common = {
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # never look for an instance role
    }
    secret(env, "s3-reader", {**keys, **common})
    secret(env, "s3-wrong", {**keys, "AWS_SECRET_ACCESS_KEY": "not-the-secret", **common})
    env.apply(manifest("1.0.0", "s3-reader", tmp_path / "cache"))
    st = env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 from S3", timeout=180)
    assert st["stable"]["version"] == "1.0.0"

    env.apply(manifest("2.0.0", "s3-wrong", tmp_path / "cache"))
    st = env.wait_status(lambda s: s.get("phase") == "RolledBack", "v2 rolled back", timeout=180)
    degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "CandidateFailing", degraded
    assert "s3://models/fraud/2.0.0/model.json: SignatureDoesNotMatch" in degraded["message"]
    assert st["traffic"]["tracks"].keys() == {"stable"}
    assert st["stable"]["version"] == "1.0.0"
