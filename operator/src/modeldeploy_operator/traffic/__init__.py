"""Traffic providers: how `status.traffic` reaches the data plane.

A provider has two calls, like Flagger's routers: `reconcile` (create what
routing needs) and `set_routes` (make the weights / mirror of `status.traffic`
effective). The builtin router reads `status.traffic` itself; the Gateway API
provider copies it into an HTTPRoute.
"""

from __future__ import annotations

from typing import Any, Protocol

from modeldeploy_operator.kube import Kube
from modeldeploy_operator.spec import ModelDeployment


class TrafficProvider(Protocol):
    async def reconcile(self, md: ModelDeployment) -> None: ...

    async def set_routes(self, md: ModelDeployment, traffic: dict[str, Any]) -> None: ...


def for_spec(md: ModelDeployment, kube: Kube, router_image: str | None) -> TrafficProvider:
    """The provider `spec.traffic.provider` names."""
    from modeldeploy_operator.traffic import builtin, gatewayapi

    if md.traffic.provider == "gatewayapi":
        return gatewayapi.GatewayAPI(kube)
    return builtin.BuiltinRouter(kube, router_image)
