"""Fetching a bundle from where the ModelDeployment says it is: a path, HTTP(S) or S3.

Remote bundles are fetched file by file: ``model.json`` first, then every file
it lists, each streamed to disk and checked against the sha256 in ``model.json``
while it arrives. Everything goes into a temporary directory beside the cache
entry and is renamed into place only when complete and verified, so a failed
or interrupted download never leaves a half bundle that a later start would
trust. An expected bundle digest (``sha256:`` of ``model.json``) is checked
before anything else is downloaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import orjson

from .bundle import MODEL_JSON, BundleError

log = logging.getLogger(__name__)

Opener = Callable[[str], Iterator[bytes]]  # relative name -> byte chunks


class SourceError(BundleError):
    """A bundle could not be fetched."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "modeldeploy" / "bundles"


def fetch(
    uri: str,
    cache_dir: Path | None = None,
    *,
    digest: str | None = None,
    timeout: float = 30.0,
    retries: int = 4,
    backoff: float = 0.5,
) -> Path:
    """Return a local directory holding the verified bundle files for ``uri``."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
        if digest:
            _check_digest(path / MODEL_JSON, (path / MODEL_JSON).read_bytes(), digest)
        return path
    if parsed.scheme in ("http", "https"):
        base = uri if uri.endswith("/") else uri + "/"
        opener = _http_opener(base, timeout)
    elif parsed.scheme == "s3":
        opener = _s3_opener(parsed.netloc, parsed.path.lstrip("/"), timeout)
    else:
        raise SourceError(f"{uri}: unsupported scheme {parsed.scheme!r} (file, http, https, s3)")
    return _download(uri, opener, cache_dir or default_cache_dir(), digest, retries, backoff)


def _download(
    uri: str, opener: Opener, cache: Path, digest: str | None, retries: int, backoff: float
) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    raw = b"".join(_retrying(uri, MODEL_JSON, opener, retries, backoff))
    if digest:
        _check_digest(f"{uri} {MODEL_JSON}", raw, digest)
    try:
        meta = orjson.loads(raw)
        files = {meta["estimator"]["file"]: meta["estimator"]["sha256"]}
        files[meta["reference"]["file"]] = meta["reference"]["sha256"]
        if meta.get("validation"):  # optional: the set strategy.validation replays
            files[meta["validation"]["file"]] = meta["validation"]["sha256"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise SourceError(f"{uri}{MODEL_JSON}: not a bundle's model.json ({exc!r})") from None
    final = cache / hashlib.sha256(raw).hexdigest()
    if final.is_dir():
        return final  # complete entries only ever appear by rename
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache))
    try:
        (tmp / MODEL_JSON).write_bytes(raw)
        for name, sha in files.items():
            if "/" in name or name.startswith("."):
                raise SourceError(f"{uri}: model.json names an unsafe file {name!r}")
            for attempt in range(retries):
                try:
                    _stream_to(tmp / name, opener(name), sha, f"{uri} {name}")
                    break
                except SourceError:
                    raise
                except Exception as exc:
                    _pause_or_raise(uri, name, exc, attempt, retries, backoff)
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():  # a concurrent fetch did not win the race either
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _retrying(uri: str, name: str, opener: Opener, retries: int, backoff: float) -> list[bytes]:
    for attempt in range(retries):
        try:
            return list(opener(name))
        except SourceError:
            raise
        except Exception as exc:
            _pause_or_raise(uri, name, exc, attempt, retries, backoff)
    raise AssertionError("unreachable")


def _pause_or_raise(
    uri: str, name: str, exc: Exception, attempt: int, retries: int, backoff: float
) -> None:
    if attempt + 1 >= retries:
        raise SourceError(f"{uri}: fetching {name} failed after {retries} attempts: {exc!r}")
    delay = backoff * 2**attempt
    log.warning("fetching %s from %s failed (%r); retrying in %.1fs", name, uri, exc, delay)
    time.sleep(delay)


def _stream_to(path: Path, chunks: Iterator[bytes], expected: str, what: str) -> None:
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for chunk in chunks:
            digest.update(chunk)
            fh.write(chunk)
    if digest.hexdigest() != expected:
        raise SourceError(
            f"{what}: sha256 mismatch: model.json says {expected}, downloaded {digest.hexdigest()}"
        )


def _check_digest(what: object, raw: bytes, expected: str) -> None:
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    want = expected if expected.startswith("sha256:") else "sha256:" + expected
    if actual != want:
        raise SourceError(f"{what}: bundle digest mismatch: expected {want}, got {actual}")


class _HTTPStatusError(Exception):
    pass


def _http_opener(base: str, timeout: float) -> Opener:
    def open_(name: str) -> Iterator[bytes]:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True) as client,
            client.stream("GET", base + name) as response,
        ):
            if response.status_code == 404:
                raise SourceError(f"{base}{name}: 404 Not Found")
            if response.status_code >= 400:
                raise _HTTPStatusError(f"{base}{name}: HTTP {response.status_code}")
            expected = response.headers.get("content-length")
            received = 0
            for chunk in response.iter_bytes(1 << 16):
                received += len(chunk)
                yield chunk
            if expected is not None and received != int(expected):
                raise _HTTPStatusError(f"{base}{name}: got {received} of {expected} bytes")

    return open_


def _s3_opener(bucket: str, prefix: str, timeout: float) -> Opener:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - depends on the install
        raise SourceError("s3:// needs boto3: pip install 'modeldeploy-predictor[s3]'") from None
    # Credentials and endpoint come from the usual AWS_* environment variables.
    client = boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 3}),
    )
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def open_(name: str) -> Iterator[bytes]:
        try:
            body = client.get_object(Bucket=bucket, Key=prefix + name)["Body"]
        except client.exceptions.NoSuchKey:
            raise SourceError(f"s3://{bucket}/{prefix}{name}: no such key") from None
        yield from body.iter_chunks(1 << 16)

    return open_
