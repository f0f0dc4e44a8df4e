"""Every tunable of the router, defined once.

cli.py turns these fields into flags (the default of each flag is the field's
default here), the proxy and the server read them, and the shadow child gets
the ones it needs through `child_args` / `from_child_args`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass

from modeldeploy_predictor.limits import MAX_BODY_BYTES, MiB


@dataclass(frozen=True)
class Settings:
    model: str = ""
    sticky_header: str = "x-modeldeploy-key"
    allow_track_override: bool = False
    connect_timeout: float = 1.0  # seconds to open an upstream connection
    timeout: float = 30.0  # seconds for an upstream's response head; also per body read
    shadow_timeout: float = 10.0  # seconds for a whole shadow exchange
    mirror_queue: int = 1000  # copies waiting for the shadow
    mirror_queue_bytes: int = 16 * MiB  # bytes of bodies waiting for or at the shadow
    mirror_concurrency: int = 32
    regression_tolerance: float = 0.01
    mirror_in_process: bool = False  # else a child process (shadow_process.py)
    max_body_bytes: int = MAX_BODY_BYTES  # request body; 413 above (as the predictor)
    max_head_bytes: int = 64 * 1024  # request line + headers; 431 above
    head_timeout: float = 30.0  # seconds a request head may take to arrive; 408 after
    keep_alive: float = 5.0  # seconds an idle client connection is kept
    drain_seconds: float = 10.0
    shutdown_delay: float = 0.0
    seed: int | None = None


DEFAULTS = Settings()

# The settings the shadow child needs (shadow_process.py).
CHILD_FIELDS = (
    "connect_timeout",
    "shadow_timeout",
    "mirror_queue",
    "mirror_queue_bytes",
    "mirror_concurrency",
    "regression_tolerance",
)


def flag(name: str) -> str:
    """The router's flag for a Settings field (the child process takes the same)."""
    return "--" + name.replace("_", "-")


def child_args(settings: Settings) -> list[str]:
    """Flags that carry the shadow settings to the child process."""
    args = [f"{flag(name)}={getattr(settings, name)}" for name in CHILD_FIELDS]
    level = logging.getLevelName(logging.getLogger().level).lower()
    return [*args, f"--log-level={level}"]


def add_child_flags(parser: argparse.ArgumentParser) -> None:
    types = {f.name: type(getattr(DEFAULTS, f.name)) for f in dataclasses.fields(Settings)}
    for name in CHILD_FIELDS:
        parser.add_argument(flag(name), type=types[name], default=getattr(DEFAULTS, name))


def from_child_args(args: argparse.Namespace) -> Settings:
    return dataclasses.replace(DEFAULTS, **{name: getattr(args, name) for name in CHILD_FIELDS})
