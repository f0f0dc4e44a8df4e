"""Server settings: one dataclass, filled from flags with environment-variable defaults.

The operator configures predictor pods through env (``MODELDEPLOY_MODEL_NAME``,
``MODELDEPLOY_MODEL_VERSION``, ``MODELDEPLOY_TRACK``, ``MODELDEPLOY_REVISION``,
...); a person at a shell uses flags. Every flag has an env twin, named
``MODELDEPLOY_`` + the flag in upper snake case, and a flag beats its env var.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields

from modeldeploy_predictor import limits


@dataclass
class Settings:
    bundle: str = ""
    digest: str | None = None
    cache_dir: str | None = None
    fetch_timeout: float = 30.0
    allow_version_mismatch: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    model_name: str | None = None  # serve under this name instead of the bundle's
    model_version: str | None = None
    track: str = ""
    revision: str = ""
    batching: bool = True
    max_batch_size: int = limits.MAX_BATCH_SIZE
    max_wait_ms: float = limits.MAX_WAIT_MS
    predict_in_thread: bool = False
    max_body_bytes: int = limits.MAX_BODY_BYTES
    prediction_log: str | None = None  # "-" for stdout, else a file path
    prediction_log_buffer: int = 10000
    feedback_ids: int = 100000  # request ids kept for ground-truth feedback (0: off)
    feedback_ttl: float = 900.0
    feedback_max_rows: int = 1024
    feedback_total_rows: int = 1_000_000
    drift_window: int = 5000
    drift_interval: float = 10.0
    graceful_timeout: float = 30.0
    log_level: str = "info"
    access_log: bool = False


HELP = {
    "bundle": "bundle URI: a directory path, file://, http(s):// or s3:// prefix",
    "digest": "expected bundle digest (sha256:<hex of model.json>); refuse on mismatch",
    "cache_dir": "where remote bundles are downloaded (default ~/.cache/modeldeploy/bundles)",
    "fetch_timeout": (
        "seconds a remote store may stay silent (connect, or between bytes) before an attempt "
        "fails; 4 attempts, then the process exits naming the store's error"
    ),
    "allow_version_mismatch": "warn instead of refusing when scikit-learn versions differ",
    "host": "address to listen on",
    "port": "port to listen on",
    "model_name": "serve under this model name (default: the bundle's)",
    "model_version": "report this version (default: the bundle's)",
    "track": "track label on metrics: stable, canary or shadow",
    "revision": "revision label on metrics (set by the operator)",
    "batching": "adaptive micro-batching of concurrent requests (--no-batching to disable)",
    "max_batch_size": "most rows merged into one predict call",
    "max_wait_ms": "longest a request waits for others to join its batch",
    "predict_in_thread": "run predict in a worker thread instead of on the event loop",
    "max_body_bytes": "largest accepted request body; larger gets 413",
    "prediction_log": "write a JSON line per request to this file ('-' = stdout)",
    "prediction_log_buffer": "records buffered for the prediction log before dropping",
    "feedback_ids": "predictions kept for ground-truth feedback, by request id (0 turns it off)",
    "feedback_ttl": "seconds a prediction waits for its outcome before it is forgotten",
    "feedback_max_rows": "predictions with more rows are not kept for feedback",
    "feedback_total_rows": "predicted rows kept for feedback, all request ids together",
    "drift_window": "rows in the sliding drift window",
    "drift_interval": "seconds between drift recomputations (also done on every scrape)",
    "graceful_timeout": "seconds to let in-flight requests finish on SIGTERM",
    "log_level": "uvicorn / Python log level",
    "access_log": "log every request (off by default: it costs throughput)",
}


def env_name(field_name: str) -> str:
    return "MODELDEPLOY_" + field_name.upper()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env = os.environ.get(env_name(f.name))
        default = f.default
        help_ = f"{HELP[f.name]} (env {env_name(f.name)})"
        if f.type == "bool":
            if env is not None:
                default = env.strip().lower() in ("1", "true", "yes", "on")
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_
            )
            continue
        kind = {"int": int, "float": float}.get(str(f.type), str)
        if env is not None:
            try:
                default = kind(env)
            except ValueError:
                parser.error(f"{env_name(f.name)}={env!r}: expected {kind.__name__}")
        parser.add_argument(flag, type=kind, default=default, help=help_, dest=f.name)


def from_namespace(ns: argparse.Namespace) -> Settings:
    return Settings(**{f.name: getattr(ns, f.name) for f in fields(Settings)})
