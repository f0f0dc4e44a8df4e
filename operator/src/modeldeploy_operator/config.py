"""Operator configuration: flags, each with an environment variable fallback.

Every flag FLAG has the variable MODELDEPLOY_<FLAG> (upper snake case); the
defaults are the fields of `Config`, defined once.

One frozen object, read once at startup and handed to the handlers through
Kopf's memo, so nothing below `main.py` reads the environment.
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Config:
    prometheus_url: str = "http://127.0.0.1:9090"
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    tick: float = 2.0
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8081
    kubeconfig: str | None = None
    router_image: str | None = None
    peering: str | None = None
    priority: int = 0
    # True when --peering came without --priority and `priority` was drawn at random.
    priority_random: bool = False
    prometheus_timeout: float = 5.0
    watch_timeout: int = 300
    log_format: str = "plain"
    log_level: str = "info"
    api_workers: int = 32
    # Deprecated settings that were used (cli.main logs them once logging is set up).
    warnings: tuple[str, ...] = ()


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("plain", "json")
# Random priorities are drawn from here: wide enough that two replicas of one
# Deployment practically never tie (a tie pauses both, see Kopf's peering).
PRIORITY_RANGE = (1, 2**31 - 1)
# Names read one more release, each with a deprecation warning: old -> new.
DEPRECATED_ENV = {
    "MODELDEPLOY_TICK_SECONDS": "MODELDEPLOY_TICK",
    "MODELDEPLOY_NAMESPACES": "MODELDEPLOY_NAMESPACE",
}


@dataclass(frozen=True)
class Option:
    """One flag; its env variable is MODELDEPLOY_ + the flag in upper snake case."""

    flag: str
    help: str
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return env_name(self.flag)


def env_name(flag: str) -> str:
    return "MODELDEPLOY_" + flag.removeprefix("--").replace("-", "_").upper()


# Every value option; its default is the Config field of the same name.
OPTIONS = (
    Option("--prometheus-url", "Prometheus base URL for analysis"),
    Option(
        "--tick",
        "seconds between reconciles of a rollout in progress; analysis runs at the "
        "resource's own interval",
        float,
    ),
    Option("--metrics-host", "address of /healthz and /metrics"),
    Option("--metrics-port", "port of /healthz and /metrics (0 disables)", int),
    Option("--kubeconfig", "kubeconfig file (default: $KUBECONFIG, else in-cluster)"),
    Option("--router-image", "router image (default: the ModelDeployment's predictor image)"),
    Option("--peering", "Kopf peering name for HA (one active replica); unset = standalone"),
    Option(
        "--priority",
        "Kopf peering priority: the highest live peer works, the others stand by "
        "(default with --peering: random, so replicas sharing their arguments never tie)",
        int,
    ),
    Option("--api-workers", "threads (and HTTP connections) for Kubernetes API calls", int),
    Option("--prometheus-timeout", "seconds a Prometheus query may take", float),
    Option("--watch-timeout", "seconds before a watch request is renewed", int),
    Option("--log-format", "log line format", str, LOG_FORMATS),
    Option("--log-level", "level of the operator's and Kopf's logs", str.lower, LOG_LEVELS),
)
# Not from Config: without a priority, peering draws one (peering_priority).
_NO_DEFAULT = {"priority"}


def _env(name: str, warnings: list[str]) -> str | None:
    """The variable, or the deprecated name it replaces (noted in `warnings`)."""
    if (value := os.environ.get(name)) is not None:
        return value
    for old, new in DEPRECATED_ENV.items():
        if new == name and (value := os.environ.get(old)) is not None:
            warnings.append(
                f"{old} is deprecated and will be ignored in a later release: use {new}"
            )
            return value
    return None


def parser(warnings: list[str] | None = None) -> argparse.ArgumentParser:
    noted = [] if warnings is None else warnings
    p = argparse.ArgumentParser(
        prog="modeldeploy-operator",
        description=(
            "Run the modeldeploy operator: watches ModelDeployments and rolls model "
            "revisions out in shadow, canary or full mode, judged by Prometheus. "
            "Every flag has an env variable, MODELDEPLOY_<FLAG>; a flag beats it."
        ),
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        help="watch this namespace (repeatable; env MODELDEPLOY_NAMESPACE, comma-separated)",
    )
    scope.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        default=(_env("MODELDEPLOY_ALL_NAMESPACES", noted) or "").lower() in ("1", "true"),
        help="watch every namespace (cluster-wide; env MODELDEPLOY_ALL_NAMESPACES=true)",
    )
    for option in OPTIONS:
        default = None if option.dest in _NO_DEFAULT else getattr(Config, option.dest)
        raw = _env(option.env, noted)
        if raw is None and option.dest == "kubeconfig":
            raw = os.environ.get("KUBECONFIG")
        if raw:
            try:
                default = option.type(raw)
            except ValueError:
                p.error(f"{option.env}={raw!r}: expected {getattr(option.type, '__name__', '')}")
        p.add_argument(
            option.flag,
            type=option.type,
            default=default,
            choices=option.choices,
            help=f"{option.help} (env {option.env}; default {default})",
        )
    return p


def peering_priority(
    peering: str | None, priority: int | None, rng: random.Random | None = None
) -> tuple[int, bool]:
    """The priority to peer with, and whether it was drawn at random.

    Replicas of one Deployment share their arguments; with equal priorities Kopf
    pauses every peer, so without an explicit priority each replica draws its own."""
    if priority is not None:
        return priority, False
    if peering is None:
        return 0, False
    return (rng or random.SystemRandom()).randint(*PRIORITY_RANGE), True


def from_args(argv: Sequence[str] | None = None) -> Config:
    warnings: list[str] = []
    p = parser(warnings)
    args = p.parse_args(argv)
    for option in OPTIONS:  # a bad env value skips argparse's choices check
        value = getattr(args, option.dest)
        if option.choices and value not in option.choices:
            p.error(f"{option.env} must be one of {', '.join(option.choices)}, not {value!r}")
    priority, priority_random = peering_priority(args.peering, args.priority)
    namespaces = tuple(args.namespace or ())
    if not namespaces and not args.all_namespaces:
        from_env = _env("MODELDEPLOY_NAMESPACE", warnings) or ""
        namespaces = tuple(n.strip() for n in from_env.split(",") if n.strip())
    values = {o.dest: getattr(args, o.dest) for o in OPTIONS}
    return Config(
        **values
        | {
            "namespaces": namespaces,
            "all_namespaces": args.all_namespaces or not namespaces,
            "priority": priority,
            "priority_random": priority_random,
            "warnings": tuple(warnings),
        }
    )
