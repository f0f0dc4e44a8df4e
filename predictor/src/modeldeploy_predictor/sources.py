"""Fetching a bundle from where the ModelDeployment says it is.

Stores: a local path (also a mounted PVC: the operator turns ``pvc://`` into
one), HTTP(S) with optional headers from ``MODELDEPLOY_STORE_HEADERS`` (a JSON
object, usually from a Secret), S3 through boto3's default credential chain
(environment, web identity of the pod's ServiceAccount, shared config), and
``gs://`` / ``az://`` through fsspec (gcsfs / adlfs, when installed).

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
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import orjson

from .bundle import MODEL_JSON, BundleError
from .modelmeta import ModelMeta

log = logging.getLogger(__name__)

Opener = Callable[[str], Iterator[bytes]]  # relative name -> byte chunks
HEADERS_ENV = "MODELDEPLOY_STORE_HEADERS"


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
        opener = _http_opener(base, timeout, store_headers(os.environ))
    elif parsed.scheme == "s3":
        opener = _s3_opener(parsed.netloc, parsed.path.lstrip("/"), timeout)
    elif parsed.scheme in FSSPEC_SCHEMES:
        opener = fsspec_opener(uri)
    elif parsed.scheme == "pvc":
        raise SourceError(
            f"{uri}: pvc:// is resolved by the operator (it mounts the claim and passes the path)"
        )
    else:
        known = ", ".join(("file", "http", "https", "s3", *FSSPEC_SCHEMES))
        raise SourceError(f"{uri}: unsupported scheme {parsed.scheme!r} ({known})")
    return download(uri, opener, cache_dir or default_cache_dir(), digest, retries, backoff)


def download(
    uri: str,
    opener: Opener,
    cache: Path,
    digest: str | None = None,
    retries: int = 4,
    backoff: float = 0.5,
) -> Path:
    """All-or-nothing, verified download of the bundle that `opener` reads.

    A pinned bundle (`digest`) already in the cache is returned without
    asking the store: entries are named by model.json's sha256 and only ever
    appear complete and verified, so a restarted container (its cache an
    emptyDir that outlives it) comes back while its store is away."""
    pinned = _pinned_entry(cache, digest)
    if pinned is not None and pinned.is_dir():
        return pinned
    return _download(uri, opener, cache, digest, retries, backoff)


def _pinned_entry(cache: Path, digest: str | None) -> Path | None:
    name = _digest_hex(digest or "")
    return cache / name if re.fullmatch(r"[0-9a-f]{64}", name) else None


def _download(
    uri: str, opener: Opener, cache: Path, digest: str | None, retries: int, backoff: float
) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    raw = b"".join(_retrying(uri, MODEL_JSON, opener, retries, backoff))
    if digest:
        _check_digest(f"{uri} {MODEL_JSON}", raw, digest)
    try:
        files = ModelMeta.loads(raw, f"{uri}{MODEL_JSON}").files()
    except BundleError as exc:
        raise SourceError(str(exc)) from None
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


def _digest_hex(digest: str) -> str:
    """A digest as given (`sha256:HEX` or bare `HEX`) without its prefix."""
    return digest.removeprefix("sha256:")


def _check_digest(what: object, raw: bytes, expected: str) -> None:
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    want = "sha256:" + _digest_hex(expected)
    if actual != want:
        raise SourceError(f"{what}: bundle digest mismatch: expected {want}, got {actual}")


class _HTTPStatusError(Exception):
    pass


def store_headers(environ: Mapping[str, str]) -> dict[str, str]:
    """HTTP headers for the store from MODELDEPLOY_STORE_HEADERS (a JSON object)."""
    raw = environ.get(HEADERS_ENV)
    if not raw:
        return {}
    try:
        headers = orjson.loads(raw)
    except orjson.JSONDecodeError:
        headers = None
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        # The value is a secret: the message never repeats it.
        raise SourceError(f"{HEADERS_ENV} must be a JSON object of header names to string values")
    return headers


def _http_opener(base: str, timeout: float, headers: dict[str, str] | None = None) -> Opener:
    def open_(name: str) -> Iterator[bytes]:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True, headers=headers) as client,
            client.stream("GET", base + name) as response,
        ):
            if response.status_code == 404:
                raise SourceError(f"{base}{name}: 404 Not Found")
            if response.status_code in (401, 403):  # retrying cannot fix credentials
                raise SourceError(
                    f"{base}{name}: HTTP {response.status_code} {response.reason_phrase} "
                    f"(check the store credentials, {HEADERS_ENV})"
                )
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
        from botocore.exceptions import ClientError, NoCredentialsError
    except ImportError:  # pragma: no cover - depends on the install
        raise SourceError("s3:// needs boto3: pip install 'modeldeploy-predictor[s3]'") from None
    # boto3's default chain: AWS_* variables (e.g. from a Secret via envFrom), web
    # identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, as IRSA injects), config files.
    # A fresh session: the chain is resolved for this fetch (the default session
    # would keep the credentials it found first for the whole process).
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 3}),
    )
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def open_(name: str) -> Iterator[bytes]:
        where = f"s3://{bucket}/{prefix}{name}"
        try:
            body = client.get_object(Bucket=bucket, Key=prefix + name)["Body"]
        except client.exceptions.NoSuchKey:
            raise SourceError(f"{where}: no such key") from None
        except NoCredentialsError:
            raise SourceError(
                f"{where}: no AWS credentials (environment, the ServiceAccount's web "
                "identity, or spec.model.credentials.secretRef)"
            ) from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _S3_PERMANENT:  # retrying cannot fix these
                message = exc.response.get("Error", {}).get("Message", "")
                raise SourceError(f"{where}: {code}: {message}") from None
            raise
        yield from body.iter_chunks(1 << 16)

    return open_


# S3 error codes that no retry fixes: wrong or missing credentials, no bucket.
_S3_PERMANENT = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "NoSuchBucket",
        "403",
    }
)

# fsspec protocol -> (package, extra) that implements it.
FSSPEC_SCHEMES = {
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
}


def fsspec_opener(uri: str) -> Opener:
    """Opener for any fsspec URL (gs:// with gcsfs, az:// with adlfs, ...).

    Credentials are each library's defaults: for gcsfs the pod's Workload
    Identity or GOOGLE_APPLICATION_CREDENTIALS, for adlfs AZURE_STORAGE_* and
    Azure workload identity variables.
    """
    scheme = urlparse(uri).scheme
    package, extra = FSSPEC_SCHEMES.get(scheme, (scheme, scheme))
    try:
        import fsspec

        fs, root = fsspec.core.url_to_fs(uri)
    except ImportError:
        raise SourceError(
            f"{scheme}:// needs fsspec and {package}: pip install 'modeldeploy-predictor[{extra}]'"
        ) from None
    root = root.rstrip("/")

    def open_(name: str) -> Iterator[bytes]:
        try:
            handle = fs.open(f"{root}/{name}", "rb")
        except FileNotFoundError:
            raise SourceError(f"{uri.rstrip('/')}/{name}: not found") from None
        except PermissionError as exc:
            raise SourceError(f"{uri.rstrip('/')}/{name}: permission denied ({exc})") from None
        with handle:
            while chunk := handle.read(1 << 16):
                yield chunk

    return open_
