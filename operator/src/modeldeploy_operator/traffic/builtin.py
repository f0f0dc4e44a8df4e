"""The builtin router: one router Deployment per ModelDeployment.

The router watches its ModelDeployment's `status.traffic` (docs/contracts.md),
so once the status is written there is nothing more to push: `set_routes` is
a no-op and `reconcile` keeps the router, its RBAC and the user Service.
"""

from __future__ import annotations

from typing import Any

from modeldeploy_operator import manifests
from modeldeploy_operator.kube import Kube
from modeldeploy_operator.spec import ModelDeployment


class BuiltinRouter:
    def __init__(self, kube: Kube, image: str | None) -> None:
        self.kube = kube
        self.image = image

    async def reconcile(self, md: ModelDeployment) -> None:
        # The router ships in the predictor image unless the operator was told otherwise.
        image = self.image or md.predictor.image
        for obj in manifests.router_objects(md, image):
            await self.kube.apply(obj)

    async def set_routes(self, md: ModelDeployment, traffic: dict[str, Any]) -> None:
        return None  # the router reads status.traffic, written by the caller
