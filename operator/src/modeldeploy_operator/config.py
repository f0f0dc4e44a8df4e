"""Operator configuration: flags, each with an environment variable fallback.

One frozen object, read once at startup and handed to the handlers through
Kopf's memo, so nothing below `main.py` reads the environment.
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass


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


LOG_LEVELS = ("debug", "info", "warning", "error")
# Random priorities are drawn from here: wide enough that two replicas of one
# Deployment practically never tie (a tie pauses both, see Kopf's peering).
PRIORITY_RANGE = (1, 2**31 - 1)


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modeldeploy-operator",
        description=(
            "Run the modeldeploy operator: watches ModelDeployments and rolls model "
            "revisions out in shadow, canary or full mode, judged by Prometheus."
        ),
    )
    p.add_argument(
        "--prometheus-url",
        default=_env("MODELDEPLOY_PROMETHEUS_URL", Config.prometheus_url),
        help="Prometheus base URL for analysis (env MODELDEPLOY_PROMETHEUS_URL)",
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        help="watch this namespace (repeatable; env MODELDEPLOY_NAMESPACES, comma-separated)",
    )
    scope.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        default=_env("MODELDEPLOY_ALL_NAMESPACES", "") in ("1", "true"),
        help="watch every namespace (cluster-wide; env MODELDEPLOY_ALL_NAMESPACES=true)",
    )
    p.add_argument(
        "--tick",
        type=float,
        default=float(_env("MODELDEPLOY_TICK_SECONDS", str(Config.tick)) or Config.tick),
        help="seconds between reconciles of a rollout in progress; analysis runs at the "
        "resource's own interval (env MODELDEPLOY_TICK_SECONDS)",
    )
    p.add_argument("--metrics-host", default=_env("MODELDEPLOY_METRICS_HOST", "0.0.0.0"))
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("MODELDEPLOY_METRICS_PORT", str(Config.metrics_port)) or 0),
        help="port of /healthz and /metrics (0 disables; env MODELDEPLOY_METRICS_PORT)",
    )
    p.add_argument("--kubeconfig", default=_env("KUBECONFIG"), help="kubeconfig file")
    p.add_argument(
        "--router-image",
        default=_env("MODELDEPLOY_ROUTER_IMAGE"),
        help="router image (default: the ModelDeployment's predictor image)",
    )
    p.add_argument(
        "--peering",
        default=_env("MODELDEPLOY_PEERING"),
        help="Kopf peering name for HA (one active replica); unset = standalone",
    )
    p.add_argument(
        "--priority",
        type=int,
        default=_env("MODELDEPLOY_PRIORITY") or None,  # argparse applies `type` to it
        help="Kopf peering priority: the highest live peer works, the others stand by "
        "(env MODELDEPLOY_PRIORITY; default with --peering: random, so replicas sharing "
        "their arguments never tie)",
    )
    p.add_argument(
        "--api-workers",
        type=int,
        default=Config.api_workers,
        help="threads (and HTTP connections) for Kubernetes API calls",
    )
    p.add_argument("--prometheus-timeout", type=float, default=Config.prometheus_timeout)
    p.add_argument("--watch-timeout", type=int, default=Config.watch_timeout)
    p.add_argument(
        "--log-format", choices=["plain", "json"], default=_env("MODELDEPLOY_LOG_FORMAT", "plain")
    )
    p.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=_env("MODELDEPLOY_LOG_LEVEL", Config.log_level),
        help="level of the operator's and Kopf's logs (env MODELDEPLOY_LOG_LEVEL)",
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
    p = parser()
    args = p.parse_args(argv)
    if args.log_level not in LOG_LEVELS:  # a bad MODELDEPLOY_LOG_LEVEL skips argparse's check
        p.error(
            f"MODELDEPLOY_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {args.log_level!r}"
        )
    priority, priority_random = peering_priority(args.peering, args.priority)
    namespaces = tuple(args.namespace or ())
    if not namespaces and not args.all_namespaces:
        from_env = _env("MODELDEPLOY_NAMESPACES", "") or ""
        namespaces = tuple(n.strip() for n in from_env.split(",") if n.strip())
    all_namespaces = args.all_namespaces or not namespaces
    return Config(
        prometheus_url=args.prometheus_url,
        namespaces=namespaces,
        all_namespaces=all_namespaces,
        tick=args.tick,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        kubeconfig=args.kubeconfig,
        router_image=args.router_image,
        peering=args.peering,
        priority=priority,
        priority_random=priority_random,
        prometheus_timeout=args.prometheus_timeout,
        watch_timeout=args.watch_timeout,
        log_format=args.log_format,
        log_level=args.log_level,
        api_workers=args.api_workers,
    )
