"""What a predictor pod needs to reach its model store (pure).

- `pvc://CLAIM/PATH`: the claim is mounted read-only and the predictor reads
  the bundle from the mounted path, so no credentials or network are involved.
- `spec.model.credentials.secretRef`: every key of the Secret becomes an
  environment variable of the predictor container (envFrom). The operator
  never reads the Secret itself (its RBAC has no access to Secrets): the
  kubelet resolves it when it starts the pod, and a missing Secret shows as
  CreateContainerConfigError, which progressDeadline reports.

Both come out as a partial pod template that `podtemplate.merge_pod` lays
into the generated pod before the user's template, so they count as ours.
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import urlparse

from modeldeploy_operator.podtemplate import PREDICTOR_CONTAINER
from modeldeploy_operator.spec import Model

STORE_VOLUME = "modeldeploy-store"
STORE_MOUNT = "/var/lib/modeldeploy/store"


def claim_of(uri: str) -> tuple[str, str] | None:
    """(claim, path inside it) of a `pvc://` URI, or None for other schemes."""
    parsed = urlparse(uri)
    if parsed.scheme != "pvc":
        return None
    if not parsed.netloc:
        raise ValueError(f"{uri}: a pvc:// URI needs a claim name (pvc://CLAIM/path)")
    return parsed.netloc, parsed.path.lstrip("/")


def bundle_location(model: Model) -> str:
    """What the predictor gets as --bundle: the mounted path for pvc://, else the URI."""
    claim = claim_of(model.uri)
    if claim is None:
        return model.uri
    return posixpath.join(STORE_MOUNT, claim[1]) if claim[1] else STORE_MOUNT


def store_template(model: Model) -> dict[str, Any]:
    """Partial pod template with the store's volume and credentials (empty when none)."""
    container: dict[str, Any] = {"name": PREDICTOR_CONTAINER}
    spec: dict[str, Any] = {}
    claim = claim_of(model.uri)
    if claim is not None:
        spec["volumes"] = [
            {
                "name": STORE_VOLUME,
                "persistentVolumeClaim": {"claimName": claim[0], "readOnly": True},
            }
        ]
        container["volumeMounts"] = [
            {"name": STORE_VOLUME, "mountPath": STORE_MOUNT, "readOnly": True}
        ]
    if model.credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": model.credentials_secret}}]
    if len(container) == 1 and not spec:
        return {}
    spec["containers"] = [container]
    return {"spec": spec}
