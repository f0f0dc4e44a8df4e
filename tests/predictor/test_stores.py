"""Model-store credentials: S3 with real authentication (moto with IAM auth on),
web identity, HTTP headers from the environment, fsspec stores."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import sys
import threading
from pathlib import Path

import boto3
import fsspec
import httpx
import pytest
from modeldeploy_predictor import sources
from modeldeploy_predictor.bundle import load_bundle

READ_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}],
    }
)


def _digest(bundle: Path) -> str:
    return "sha256:" + hashlib.sha256((bundle / "model.json").read_bytes()).hexdigest()


def _upload(url: str, bucket: str, prefix: str, bundle: Path, **creds: str) -> None:
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **creds)
    s3.create_bucket(Bucket=bucket)
    for path in bundle.iterdir():
        s3.upload_file(str(path), bucket, f"{prefix}/{path.name}")


# ----- S3 with authentication enforced -------------------------------------------


@pytest.fixture(scope="module")
def authed_s3(tmp_path_factory, helpers, classifier_bundle):
    """moto with IAM auth on: a reader user with a key; anything else is refused."""
    with helpers.moto_server(tmp_path_factory.mktemp("moto-auth")) as url:
        admin = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin"}
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", **admin)
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=READ_POLICY)
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        _upload(url, "private", "cancer/1", classifier_bundle, **admin)
        # From now on every request must be signed by a known key with a policy.
        httpx.post(url + "/moto-api/reset-auth", content=b"0").raise_for_status()
        yield url, key["AccessKeyId"], key["SecretAccessKey"]


def test_s3_with_credentials_from_the_environment(
    helpers, authed_s3, monkeypatch, tmp_path, classifier_bundle
):
    url, key_id, secret = authed_s3
    helpers.isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
    # What envFrom of spec.model.credentials.secretRef puts into the pod.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    cache = tmp_path / "cache"
    local = sources.fetch("s3://private/cancer/1/", cache, digest=_digest(classifier_bundle))
    assert load_bundle(local).digest == _digest(classifier_bundle)


def test_s3_wrong_credentials_fail_at_once_naming_the_error(
    helpers, authed_s3, monkeypatch, tmp_path
):
    url, key_id, _ = authed_s3
    helpers.isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
    cache = tmp_path / "cache"
    for key, secret, code in (
        ("AKIAUNKNOWN000000000", "x", "InvalidAccessKeyId"),
        (key_id, "wrong-secret", "SignatureDoesNotMatch"),
    ):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        with pytest.raises(sources.SourceError) as info:
            # a large backoff would make a retried permanent error visible as a slow test
            sources.fetch("s3://private/cancer/1/", cache, retries=2, backoff=30)
        assert str(info.value).startswith(f"s3://private/cancer/1/model.json: {code}")
    assert list(cache.iterdir()) == []


def test_s3_without_any_credentials_says_where_they_come_from(helpers, monkeypatch, tmp_path):
    helpers.isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # never reached
    with pytest.raises(sources.SourceError, match=r"no AWS credentials .*secretRef"):
        sources.fetch("s3://private/cancer/1/", tmp_path / "cache", retries=1)


@pytest.fixture(scope="module")
def open_s3(tmp_path_factory, helpers):
    # moto cannot authenticate AssumeRoleWithWebIdentity (an unsigned call) with IAM
    # auth on, so web identity runs against a server without auth: the test shows the
    # chain gets credentials from STS where without the token there are none at all.
    with helpers.moto_server(tmp_path_factory.mktemp("moto-open")) as url:
        yield url


def test_s3_with_web_identity_like_irsa(helpers, open_s3, monkeypatch, tmp_path, classifier_bundle):
    helpers.isolate_aws(monkeypatch, tmp_path)
    admin = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin"}
    _upload(open_s3, "irsa", "m", classifier_bundle, **admin)
    monkeypatch.setenv("AWS_ENDPOINT_URL", open_s3)  # S3 and STS
    with pytest.raises(sources.SourceError, match="no AWS credentials"):
        sources.fetch("s3://irsa/m", tmp_path / "cache", retries=1)
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")  # what the kubelet projects
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/fraud-reader")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    local = sources.fetch("s3://irsa/m", tmp_path / "cache")
    assert load_bundle(local).digest == _digest(classifier_bundle)


# ----- HTTP with headers -------------------------------------------------------------


@pytest.fixture
def private_http(classifier_bundle, tmp_path, helpers):
    """Serves the bundle only to requests with the right Authorization header."""
    root = tmp_path / "www"
    shutil.copytree(classifier_bundle, root / "m")
    seen: list[str | None] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != "Bearer s3cret":
                self.send_error(401)
                return
            super().do_GET()

    factory = lambda *a, **kw: Handler(*a, directory=str(root), **kw)  # noqa: E731
    with helpers.http_server(factory) as url:
        yield f"{url}/m/", seen


def test_http_headers_from_the_environment(private_http, monkeypatch, tmp_path, classifier_bundle):
    url, seen = private_http
    cache = tmp_path / "cache"
    monkeypatch.delenv(sources.HEADERS_ENV, raising=False)
    with pytest.raises(sources.SourceError, match=r"HTTP 401 Unauthorized .*MODELDEPLOY_STORE"):
        sources.fetch(url, cache, retries=3, backoff=30)
    assert seen == [None]  # refused once, not retried
    monkeypatch.setenv(sources.HEADERS_ENV, json.dumps({"Authorization": "Bearer s3cret"}))
    local = sources.fetch(url, cache, digest=_digest(classifier_bundle))
    assert load_bundle(local).name == "cancer"
    assert seen[1:] == ["Bearer s3cret"] * 3  # model.json, estimator, reference


def test_a_slow_store_is_bounded_by_the_timeout(helpers, tmp_path):
    """A store that accepts the connection and never answers: each attempt times out,
    the fetch gives up after its retries and names the timeout; nothing is cached."""
    release = threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            release.wait(10)  # far beyond the client's timeout

    with helpers.http_server(Stalling) as url:
        cache = tmp_path / "cache"
        try:
            with pytest.raises(sources.SourceError) as info:
                sources.fetch(f"{url}/m/", cache, timeout=0.3, retries=2, backoff=0.01)
        finally:
            release.set()
    assert "model.json failed after 2 attempts" in str(info.value)
    assert "Timeout" in str(info.value)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("raw", ["not json", '["a"]', '{"Authorization": 1}'])
def test_bad_header_setting_is_named_without_its_value(raw):
    with pytest.raises(sources.SourceError) as info:
        sources.store_headers({sources.HEADERS_ENV: raw})
    assert sources.HEADERS_ENV in str(info.value) and raw not in str(info.value)


# ----- fsspec stores (gs://, az://) ----------------------------------------------------


def test_fsspec_store_download_is_verified_and_all_or_nothing(classifier_bundle, tmp_path):
    """gcsfs / adlfs are not installed here and no emulator runs: fsspec's in-memory
    filesystem stands in for them behind the same opener."""
    fs = fsspec.filesystem("memory")
    for path in classifier_bundle.iterdir():
        fs.pipe(f"/bundles/cancer/{path.name}", path.read_bytes())
    cache = tmp_path / "cache"
    opener = sources.fsspec_opener("memory://bundles/cancer/")
    local = sources.download("memory://bundles/cancer/", opener, cache, _digest(classifier_bundle))
    assert load_bundle(local).digest == _digest(classifier_bundle)
    meta = json.loads((classifier_bundle / "model.json").read_text())
    estimator = meta["estimator"]["file"]
    fs.pipe(f"/bundles/bad/{estimator}", b"corrupted")
    for name in ("model.json", meta["reference"]["file"]):
        fs.pipe(f"/bundles/bad/{name}", (classifier_bundle / name).read_bytes())
    other = tmp_path / "other"  # the cache is keyed by model.json: a fresh one
    with pytest.raises(sources.SourceError, match=f"{estimator}: sha256 mismatch"):
        sources.download(
            "memory://bundles/bad", sources.fsspec_opener("memory://bundles/bad"), other
        )
    with pytest.raises(sources.SourceError, match=r"memory://bundles/none/model\.json: not found"):
        sources.download(
            "memory://bundles/none", sources.fsspec_opener("memory://bundles/none"), other
        )
    assert list(other.iterdir()) == []
    assert [p.name for p in cache.iterdir()] == [local.name]
    fs.rm("/bundles", recursive=True)


def test_gs_without_gcsfs_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if not installed
    with pytest.raises(sources.SourceError, match=r"gs:// needs fsspec and gcsfs: .*\[gcs\]"):
        sources.fetch("gs://models/fraud/1", tmp_path / "cache")
