"""Kubeconfig documents: pure builders plus one atomic writer.

The same shape serves the admin (client certificate), every control-plane
component and each pod (a bound service-account token).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def build(
    server: str,
    ca_cert: Path,
    *,
    user: str,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    token: str | None = None,
    namespace: str = "default",
) -> dict:
    """A single-context kubeconfig; credentials are embedded so the file stands alone."""
    creds: dict[str, str] = {}
    if client_cert and client_key:
        creds["client-certificate-data"] = _b64(client_cert)
        creds["client-key-data"] = _b64(client_key)
    if token:
        creds["token"] = token
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "devcluster",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)},
            }
        ],
        "users": [{"name": user, "user": creds}],
        "contexts": [
            {
                "name": "devcluster",
                "context": {"cluster": "devcluster", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "devcluster",
        "preferences": {},
    }


def write(path: Path, config: dict) -> Path:
    """Write atomically (readers never see half a file) and owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    os.replace(tmp, path)
    return path
