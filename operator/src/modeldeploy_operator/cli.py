"""`modeldeploy-operator`: parse flags, configure logging, run Kopf."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

import kopf

from modeldeploy_operator import config as configmod
from modeldeploy_operator import main as handlers


def main(argv: Sequence[str] | None = None) -> None:
    config = configmod.from_args(argv)
    if config.kubeconfig:
        # Kopf's own login reads KUBECONFIG; keep it and our client on one cluster.
        os.environ["KUBECONFIG"] = config.kubeconfig
    kopf.configure(
        verbose=False,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    # Kopf reports every handler run at INFO; keep its per-object log to warnings
    # and leave INFO to our own transition logs.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
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
