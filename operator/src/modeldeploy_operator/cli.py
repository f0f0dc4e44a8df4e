"""`modeldeploy-operator`: parse flags, configure logging, run Kopf."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

import kopf

from modeldeploy_operator import config as configmod
from modeldeploy_operator import main as handlers

log = logging.getLogger(__name__)


def logger_levels(level: str) -> dict[str, int]:
    """Logger name -> level for `--log-level`.

    The operator's and Kopf's loggers follow the flag. Kopf's per-object logger
    reports every handler run at INFO, so it stays at warnings unless debugging.
    Other libraries (the Kubernetes client dumps bodies at DEBUG) never go below
    INFO through the root logger; httpx (the PromQL client) logs every request at
    INFO, one line per query per analysis run, so it stays at warnings.
    """
    wanted = logging.getLevelNamesMapping()[level.upper()]
    return {
        "": max(wanted, logging.INFO),
        "kopf": wanted,
        "kopf.objects": wanted if wanted == logging.DEBUG else max(wanted, logging.WARNING),
        "modeldeploy_operator": wanted,
        "httpx": max(wanted, logging.WARNING),
        "httpcore": max(wanted, logging.WARNING),
    }


def configure_logging(log_format: str, level: str) -> None:
    kopf.configure(
        debug=level == "debug",
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN,
    )
    for name, value in logger_levels(level).items():
        logging.getLogger(name).setLevel(value)


def main(argv: Sequence[str] | None = None) -> None:
    config = configmod.from_args(argv)
    if config.kubeconfig:
        # Kopf's own login reads KUBECONFIG; keep it and our client on one cluster.
        os.environ["KUBECONFIG"] = config.kubeconfig
    configure_logging(config.log_format, config.log_level)
    for warning in config.warnings:
        log.warning("%s", warning)
    if config.peering is not None:
        log.info(
            "peering %r with priority %d%s",
            config.peering,
            config.priority,
            " (random: no --priority given)" if config.priority_random else "",
        )
    registry = handlers.build_registry(config)
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=config.all_namespaces,
            namespaces=config.namespaces,
            standalone=config.peering is None,
            priority=config.priority,
            peering_name=config.peering,
            memo=kopf.Memo(),
        )
    )


if __name__ == "__main__":
    main()
