"""Run the real `helm` binary against the chart and parse what it renders.

The chart tests need the helm v3 binary that `hack/build-binaries.sh` builds
from its Go module into a cache outside the repo. Finding it lives here so
that every test (and `hack/e2e-kind.sh`) looks in the same places
(modeldeploy_devcluster.binaries.tool) and says the same when it is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from modeldeploy_devcluster import binaries

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "modeldeploy"
RELEASE = "md"


def _kube_version() -> str:
    """The pinned Kubernetes version (hack/versions.env), for offline rendering.

    `helm template` cannot ask a cluster; pinning the version makes renders
    independent of the helm build's default (tested on its own below).
    """
    text = (REPO / "hack" / "versions.env").read_text()
    return re.search(r"^KUBERNETES_VERSION=(\S+)$", text, re.M).group(1)


KUBE_VERSION = _kube_version()


def find_helm() -> str | None:
    """$HELM, the pinned build in the binaries cache, or `helm` on PATH."""
    found = binaries.tool("helm")
    return str(found) if found else None


HELM_MISSING = (
    "helm binary not found: run `make binaries` (builds helm from helm.sh/helm/v3 into "
    "the cache that `bash hack/build-binaries.sh dir` prints) or set HELM=/path/to/helm"
)


def set_flags(values: Mapping[str, Any]) -> list[str]:
    """`--set-json key=value` flags, so types (bools, lists) survive as typed."""
    import json

    flags: list[str] = []
    for key, value in values.items():
        flags += ["--set-json", f"{key}={json.dumps(value)}"]
    return flags


class Helm:
    """A thin wrapper: run helm with a throwaway HOME so no user config leaks in."""

    def __init__(self, binary: str, home: Path, kubeconfig: str | None = None) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        if kubeconfig:
            self.env["KUBECONFIG"] = kubeconfig

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *extra: str,
        namespace: str = "modeldeploy-system",
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        return self.run(
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            namespace,
            "--include-crds",
            "--kube-version",
            KUBE_VERSION,
            *set_flags(values or {}),
            *extra,
            check=check,
        )

    def render(self, values: Mapping[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
        """The rendered manifests as dicts (empty documents dropped)."""
        return [d for d in yaml.safe_load_all(self.template(values, **kw).stdout) if d]


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
