"""Shared pieces of the operator benchmarks: cluster access, the operator process, /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from modeldeploy_devcluster import procs as process_groups

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"
GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def kubeconfig_path(arg: str | None) -> str:
    path = arg or os.environ.get("MODELDEPLOY_KUBECONFIG") or os.environ.get("KUBECONFIG")
    if not path:
        sys.exit("no cluster: pass --kubeconfig or set MODELDEPLOY_KUBECONFIG "
                 "(e.g. from `modeldeploy-devcluster up`)")  # fmt: skip
    return path


def api(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def apply_crd(api_client: client.ApiClient) -> None:
    crds = DynamicClient(api_client).resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    crds.server_side_apply(
        body=yaml.safe_load(CRD.read_text()), field_manager="bench", force_conflicts=True
    )
    custom = client.CustomObjectsApi(api_client)
    for _ in range(100):
        try:
            custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
            return
        except client.ApiException:
            time.sleep(0.2)
    raise RuntimeError("ModelDeployment API not served")


def new_namespace(api_client: client.ApiClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
    return name


def body(name: str, version: str, **strategy: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": name, "version": version, "uri": f"/models/{name}/{version}"},
            "predictor": {"image": "ghcr.io/modeldeploy/predictor:bench", "replicas": 0},
            "strategy": {
                "type": "Canary",
                "canary": {"steps": [{"weight": 50, "pause": "1s"}]},
                "analysis": {"interval": "1s", "metrics": []},
                **strategy,
            },
        },
    }


class Operator:
    """The operator as a subprocess, with its CPU time and resident memory from /proc."""

    def __init__(self, kubeconfig: str, namespace: str, prometheus_url: str, tick: float) -> None:
        exe = str(Path(sys.executable).with_name("modeldeploy-operator"))
        self.log = open(f"/tmp/bench-operator-{namespace}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [exe, "--kubeconfig", kubeconfig, "--namespace", namespace,
             "--prometheus-url", prometheus_url, "--tick", str(tick), "--metrics-port", "0"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.peak_rss = 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
                self.peak_rss = max(self.peak_rss, rss)
                return rss
        return 0.0

    def stop(self) -> None:
        process_groups.stop(self.proc, grace=20.0)
        self.log.close()
