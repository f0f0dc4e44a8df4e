"""Helpers for the operator's cluster tests: the CRD and the operator process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

# The local-cluster helpers ship with the devcluster component; without them the
# cluster tests are skipped (with this reason) instead of failing to import.
wait_for = pytest.importorskip(
    "modeldeploy_devcluster.waiting", reason="needs the devcluster pytest plugin"
).wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"
GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"


def apply_crd(api: client.ApiClient) -> None:
    """Server-side apply the CRD from crds/ and wait until its API is served."""
    body = yaml.safe_load(CRD.read_text())
    crds = DynamicClient(api).resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    crds.server_side_apply(body=body, field_manager="modeldeploy-tests", force_conflicts=True)
    custom = client.CustomObjectsApi(api)
    wait_for(
        lambda: custom.list_cluster_custom_object(GROUP, VERSION, PLURAL) is not None,
        timeout=30,
        message="the ModelDeployment API to be served",
    )


class OperatorProcess:
    """`modeldeploy-operator` as a subprocess in its own process group."""

    def __init__(
        self, kubeconfig: str | os.PathLike[str], prometheus_url: str, namespace: str, *extra: str
    ) -> None:
        self.port = free_port()
        self.args = [
            str(Path(sys.executable).with_name("modeldeploy-operator")),
            "--kubeconfig",
            str(kubeconfig),
            "--prometheus-url",
            prometheus_url,
            "--namespace",
            namespace,
            "--tick",
            "0.5",
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            str(self.port),
            *extra,
        ]
        # The log file outlives this call: the process writes to it until stop().
        self.log = tempfile.NamedTemporaryFile(prefix="operator-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        self.proc = subprocess.Popen(
            self.args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text

    def reconciles(self) -> int:
        """Reconciles this process has finished (from its own /metrics)."""
        found = re.search(
            r"^modeldeploy_operator_reconcile_duration_seconds_count (\S+)$", self.metrics(), re.M
        )
        return int(float(found.group(1))) if found else 0

    def wait_healthy(self) -> None:
        url = f"http://127.0.0.1:{self.port}/healthz"
        wait_for(lambda: httpx.get(url, timeout=1).status_code == 200, 30, message=url)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def close(self) -> None:
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_md(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
