"""Where the demo's bundles live: the local file system, or an S3 store (kind e2e).

On the local cluster predictor pods are processes on this machine and read
the bundle directories directly. On a real cluster (DEMO_S3_UPLOAD_URL set,
as hack/e2e-kind.sh does) every file is uploaded to an S3-compatible store,
and predictor pods read it from inside the cluster with credentials from a
Secret, as they would from a user's bucket.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

BUCKET = "modeldeploy-demo"
SECRET = "model-store"
# moto accepts any key; a user's store would have real ones in this Secret.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo-secret"}


@dataclass(frozen=True)
class Store:
    upload_url: str = ""  # S3 endpoint reachable from this machine ("" = local files)
    cluster_url: str = ""  # the same store as predictor pods reach it
    region: str = "us-east-1"
    uris: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Store:
        env = os.environ
        return cls(env.get("DEMO_S3_UPLOAD_URL", ""), env.get("DEMO_S3_CLUSTER_URL", ""))

    @property
    def remote(self) -> bool:
        return bool(self.upload_url)

    def publish(self, bundles: dict[str, Path]) -> dict[str, str]:
        """version -> bundle URI the predictor is given."""
        if not self.remote:
            return {v: str(p) for v, p in bundles.items()}
        import boto3

        s3 = boto3.client(
            "s3", endpoint_url=self.upload_url, region_name=self.region, **_boto(CREDENTIALS)
        )
        s3.create_bucket(Bucket=BUCKET)
        uris = {}
        for version, path in bundles.items():
            prefix = f"{path.name}/"
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                s3.upload_file(str(f), BUCKET, prefix + f.relative_to(path).as_posix())
            uris[version] = f"s3://{BUCKET}/{prefix}"
        return uris

    def create_secret(self, api: client.ApiClient, namespace: str) -> None:
        """The store's credentials and endpoint as a Secret in the demo's namespace."""
        if not self.remote:
            return
        data = {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL_S3": self.cluster_url,
            "AWS_DEFAULT_REGION": self.region,
        }
        body = {"metadata": {"name": SECRET}, "stringData": data, "type": "Opaque"}
        client.CoreV1Api(api).create_namespaced_secret(namespace, body)

    @property
    def secret_name(self) -> str | None:
        """The Secret predictors read the store's keys from (spec.model.credentials)."""
        return SECRET if self.remote else None


def _boto(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"],
    }
