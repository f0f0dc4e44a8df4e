"""Bundle sources: S3 against moto's server on loopback, HTTP against a local server."""

from __future__ import annotations

import http.server
import os
import shutil
from pathlib import Path

import boto3
import httpx
import orjson
import pytest
from modeldeploy_predictor import sources
from modeldeploy_predictor.bundle import load_bundle


def _digest(bundle: Path) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256((bundle / "model.json").read_bytes()).hexdigest()


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# ----- file ----------------------------------------------------------------------


def test_plain_path_and_file_uri(classifier_bundle):
    assert sources.fetch(str(classifier_bundle)) == classifier_bundle
    assert (
        sources.fetch(f"file://{classifier_bundle}", digest=_digest(classifier_bundle))
        == classifier_bundle
    )
    with pytest.raises(sources.SourceError, match="bundle digest mismatch"):
        sources.fetch(str(classifier_bundle), digest="sha256:" + "0" * 64)
    with pytest.raises(sources.SourceError, match="unsupported scheme 'ftp'"):
        sources.fetch("ftp://x/y")


# ----- http ----------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the bundle; ``behaviour`` injects failures per file name."""

    behaviour: dict[str, list[str]] = {}
    requests: list[str] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        self.requests.append(name)
        plan = self.behaviour.get(name)
        action = plan.pop(0) if plan else "ok"
        if action == "503":
            self.send_error(503)
            return
        if action in ("truncate", "corrupt"):
            data = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if action == "truncate":  # the connection dies half-way
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(bytes([data[0] ^ 0xFF]) + data[1:])
            return
        super().do_GET()


@pytest.fixture
def http_bundle(classifier_bundle, tmp_path, helpers):
    root = tmp_path / "www"
    shutil.copytree(classifier_bundle, root / "models" / "cancer" / "1.0.0")
    handler = type("H", (_Handler,), {"behaviour": {}, "requests": []})

    def factory(*args, **kwargs):
        return handler(*args, directory=str(root), **kwargs)

    with helpers.http_server(factory) as url:
        yield f"{url}/models/cancer/1.0.0/", handler


def test_http_download_verifies_and_caches(http_bundle, classifier_bundle, tmp_path):
    url, handler = http_bundle
    cache = tmp_path / "cache"
    local = sources.fetch(url, cache, digest=_digest(classifier_bundle), backoff=0.01)
    assert load_bundle(local).digest == _digest(classifier_bundle)
    assert _leftovers(cache) == [local.name]
    before = len(handler.requests)
    assert sources.fetch(url, cache) == local  # cached: only model.json fetched again
    assert handler.requests[before:] == ["model.json"]


def test_a_pinned_bundle_in_the_cache_is_served_while_the_store_is_away(
    http_bundle, classifier_bundle, tmp_path
):
    url, handler = http_bundle
    cache, digest = tmp_path / "cache", _digest(classifier_bundle)
    local = sources.fetch(url, cache, digest=digest, backoff=0.01)
    handler.behaviour["model.json"] = ["503"] * 10  # the store is away
    before = len(handler.requests)
    assert sources.fetch(url, cache, digest=digest.removeprefix("sha256:"), retries=2) == local
    assert handler.requests[before:] == []
    # Unpinned, the store says which bundle the URI is now: it must answer.
    with pytest.raises(sources.SourceError, match="after 2 attempts"):
        sources.fetch(url, cache, retries=2, backoff=0.01)
    # Pinned to a bundle the cache lacks: the store is asked (and is away).
    with pytest.raises(sources.SourceError, match="after 2 attempts"):
        sources.fetch(url, cache, digest="sha256:" + "2" * 64, retries=2, backoff=0.01)


def test_http_retries_transient_failures(http_bundle, tmp_path):
    url, handler = http_bundle
    handler.behaviour.update({"model.json": ["503"], "model.joblib": ["truncate", "503"]})
    local = sources.fetch(url, tmp_path / "cache", backoff=0.01)
    assert load_bundle(local).name == "cancer"
    assert handler.requests.count("model.joblib") == 3


@pytest.mark.parametrize("failure", ["truncate", "corrupt"])
def test_failed_download_leaves_no_half_bundle(http_bundle, tmp_path, failure):
    url, handler = http_bundle
    handler.behaviour["model.joblib"] = [failure] * 10
    cache = tmp_path / "cache"
    with pytest.raises(sources.SourceError) as info:
        sources.fetch(url, cache, retries=3, backoff=0.01)
    message = str(info.value)
    if failure == "corrupt":
        assert "sha256 mismatch" in message and "model.joblib" in message
    else:
        assert "after 3 attempts" in message
    assert _leftovers(cache) == []


def test_http_wrong_digest_and_missing_bundle(http_bundle, tmp_path):
    url, _ = http_bundle
    with pytest.raises(sources.SourceError, match="bundle digest mismatch"):
        sources.fetch(url, tmp_path / "cache", digest="sha256:" + "1" * 64)
    with pytest.raises(sources.SourceError, match="404"):
        sources.fetch(url.replace("1.0.0", "9.9.9"), tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == []


def test_server_serves_an_http_bundle(http_bundle, serve, tmp_path, classifier_bundle):
    url, _ = http_bundle
    flags = ("--cache-dir", str(tmp_path / "c"), "--digest", _digest(classifier_bundle))
    with serve(url, *flags) as server:
        meta = httpx.get(server.url + "/v2/models/cancer").json()
        assert meta["parameters"]["digest"] == _digest(classifier_bundle)


# ----- s3 (moto server on loopback) ----------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory, helpers):
    with helpers.moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _upload(bucket: str, prefix: str, bundle: Path) -> None:
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket=bucket)
    for path in bundle.iterdir():
        client.upload_file(str(path), bucket, f"{prefix}/{path.name}")


def test_s3_download(s3_env, classifier_bundle, tmp_path):
    _upload("models", "cancer/1.0.0", classifier_bundle)
    cache = tmp_path / "cache"
    local = sources.fetch("s3://models/cancer/1.0.0/", cache, digest=_digest(classifier_bundle))
    assert load_bundle(local).digest == _digest(classifier_bundle)
    with pytest.raises(sources.SourceError, match="no such key"):
        sources.fetch("s3://models/cancer/0.0.1", cache)
    assert _leftovers(cache) == [local.name]


def test_s3_corrupt_object_leaves_nothing(s3_env, classifier_bundle, tmp_path):
    bad = shutil.copytree(classifier_bundle, tmp_path / "bad")
    (bad / "reference.json").write_bytes(b"{}")
    _upload("corrupt", "cancer", bad)
    cache = tmp_path / "cache"
    with pytest.raises(sources.SourceError, match=r"reference\.json: sha256 mismatch"):
        sources.fetch("s3://corrupt/cancer", cache)
    assert _leftovers(cache) == []


def test_server_serves_an_s3_bundle(s3_env, serve, classifier_bundle, tmp_path, cancer, classifier):
    x, _, _ = cancer
    _upload("served", "m", classifier_bundle)
    with serve("s3://served/m", "--cache-dir", str(tmp_path / "c"), env=s3_env) as server:
        r = httpx.post(server.url + "/v1/models/cancer:predict", json={"instances": x[:5].tolist()})
        assert r.json()["predictions"] == classifier.predict(x[:5]).tolist()


def test_http_bundle_of_a_newer_format_is_refused_before_download(http_bundle, tmp_path):
    url, handler = http_bundle
    www = tmp_path / "www" / "models" / "cancer" / "1.0.0" / "model.json"
    meta = orjson.loads(www.read_bytes())
    www.write_bytes(orjson.dumps({**meta, "format": 3}))
    with pytest.raises(sources.SourceError, match=r"bundle format 3 .* reads formats \[1, 2\]"):
        sources.fetch(url, tmp_path / "cache")
    assert handler.requests == ["model.json"] and _leftovers(tmp_path / "cache") == []


def test_serve_gives_up_on_a_silent_store_within_its_fetch_timeout(tmp_path, capsys):
    """A store that accepts connections and never answers (a blackhole): `serve`
    exits with the store's error after its attempts at --fetch-timeout each,
    so the pod's termination message (and the rollout's) can name it."""
    import socket
    import time

    from modeldeploy_predictor import cli

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes connects; nothing ever reads or writes
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/fraud/1/"
        started = time.monotonic()
        code = cli.main(
            ["serve", "--bundle", url, "--fetch-timeout", "0.3", "--cache-dir", str(tmp_path)]
        )
        took = time.monotonic() - started
    assert code == 2
    assert "fetching model.json failed after 4 attempts: ReadTimeout" in capsys.readouterr().err
    assert took < 15  # 4 x 0.3 s + the 3.5 s back-off, not 4 x 30 s
