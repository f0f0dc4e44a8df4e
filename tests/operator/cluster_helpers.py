"""Helpers for the operator's cluster tests: the CRD and the operator process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from modeldeploy_devcluster.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"
GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
# Reasons cluster tests were skipped for a missing prerequisite other than the
# cluster itself (e.g. the Gateway API CRDs); conftest.py prints them in red.
SKIPPED: list[str] = []


def apply_crd(api: client.ApiClient, path: Path = CRD) -> None:
    """Server-side apply a CRD (default: ours from crds/) and wait until its API is served."""
    body = yaml.safe_load(path.read_text())
    crds = DynamicClient(api).resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    crds.server_side_apply(body=body, field_manager="modeldeploy-tests", force_conflicts=True)
    group, plural = body["spec"]["group"], body["spec"]["names"]["plural"]
    version = next(v["name"] for v in body["spec"]["versions"] if v.get("storage"))
    custom = client.CustomObjectsApi(api)
    wait_for(
        lambda: custom.list_cluster_custom_object(group, version, plural) is not None,
        timeout=30,
        message=f"the {plural}.{group} API to be served",
    )


def manifest(version: str, steps: list[dict[str, Any]], **strategy: Any) -> dict[str, Any]:
    """ModelDeployment `fraud` with 0 replicas: Ready at once, no data plane needed."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud"},
        "spec": {
            "model": {"name": "fraud", "version": version, "uri": f"/models/fraud/{version}"},
            "predictor": {"image": "ghcr.io/modeldeploy/predictor:0.1.0", "replicas": 0},
            "strategy": {
                "type": "Canary",
                "canary": {"steps": steps},
                "analysis": {"interval": "1s", "metrics": []},
                "progressDeadline": "1m",
                **strategy,
            },
        },
    }


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


class Env:
    def __init__(self, cluster: Any, namespace: str, prometheus_url: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.api = cluster.api_client()
        self.custom = client.CustomObjectsApi(self.api)
        self.prometheus_url = prometheus_url
        self.operator: OperatorProcess | None = None

    def start_operator(self) -> OperatorProcess:
        self.operator = OperatorProcess(
            self.cluster.kubeconfig, self.prometheus_url, self.namespace
        ).start()
        return self.operator

    def apply(self, body: dict[str, Any]) -> None:
        try:
            current = self.get()
        except client.ApiException:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body
            )
            return
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            current["metadata"]["name"],
            {"spec": body["spec"]},
        )

    def get(self) -> dict[str, Any]:
        return get_md(self.api, self.namespace, "fraud")

    def status(self) -> dict[str, Any]:
        return self.get().get("status") or {}

    def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], message: str, timeout: float = 60
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.status()
            return st if predicate(st) else None

        try:
            return wait_for(check, timeout=timeout, message=message)
        except TimeoutError as exc:
            log = self.operator.output()[-3000:] if self.operator else ""
            raise AssertionError(f"{message}; status={self.status()}\n{log}") from exc

    def plugin(self, *args: str) -> subprocess.CompletedProcess[str]:
        exe = str(Path(sys.executable).with_name("kubectl-modeldeploy"))
        return subprocess.run(
            [exe, "--kubeconfig", str(self.cluster.kubeconfig), "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def events(self) -> list[str]:
        core = client.CoreV1Api(self.api)
        items = core.list_namespaced_event(
            self.namespace, field_selector="involvedObject.kind=ModelDeployment"
        ).items
        return [e.reason for e in items]
