"""The demo's I/O with the cluster: start/stop it, Helm-install the operator, read status.

The local cluster comes from `modeldeploy_devcluster.launcher` (the same code
`modeldeploy-devcluster up` runs); helm is the pinned binary that
`hack/build-binaries.sh` caches; everything else goes through the
Kubernetes client (no kubectl needed). With DEMO_CLUSTER=current the cluster of
KUBECONFIG is used instead and only what the demo created is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from modeldeploy_devcluster import binaries, launcher
from modeldeploy_devcluster.cluster import Cluster, NoSuchPod
from modeldeploy_devcluster.waiting import wait_for

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "modeldeploy"
GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"


def helm_binary() -> str:
    """$HELM, the pinned build in the binaries cache, or helm on PATH."""
    if found := binaries.tool("helm"):
        return str(found)
    raise RuntimeError("no helm binary: run `make binaries` or set HELM=/path/to/helm")


@dataclass
class Infra:
    """The cluster the demo runs on, and what the demo made in it (to undo)."""

    cluster: Cluster
    own_root: Path | None  # state dir of a cluster this demo started
    namespace: str
    helm_home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="md-helm-")))
    installed: bool = False
    release: str = "demo"
    operator_ns: str = "modeldeploy-system"
    _api: client.ApiClient | None = field(default=None, repr=False)

    @classmethod
    def start(cls, namespace: str, current: bool) -> Infra:
        if current:
            kubeconfig = os.environ.get("KUBECONFIG")
            if not kubeconfig:
                raise RuntimeError("DEMO_CLUSTER=current needs KUBECONFIG")
            prometheus = os.environ.get("MODELDEPLOY_PROMETHEUS_URL")
            return cls(Cluster.from_kubeconfig(Path(kubeconfig), prometheus), None, namespace)
        # Short path: it ends up in socket paths and process arguments.
        root = Path(tempfile.mkdtemp(prefix="mddemo-")) / "cluster"
        try:
            return cls(launcher.up(root, scrape_interval="2s"), root, namespace)
        except BaseException:
            launcher.down(root)
            shutil.rmtree(root.parent, ignore_errors=True)
            raise

    def api(self) -> client.ApiClient:
        # One client for the run: status is polled often (every 50 ms in the
        # rollback benchmark), and a new client reads the kubeconfig and opens
        # a new TLS connection each time.
        if self._api is None:
            self._api = self.cluster.api_client()
        return self._api

    def helm(self, *args: str, timeout: float = 300) -> str:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "HELM_CACHE_HOME": str(self.helm_home / "cache"),
            "HELM_CONFIG_HOME": str(self.helm_home / "config"),
            "HELM_DATA_HOME": str(self.helm_home / "data"),
        }
        proc = subprocess.run(
            [helm_binary(), *args], capture_output=True, text=True, env=env, timeout=timeout
        )
        if proc.returncode:
            raise RuntimeError(f"helm {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def install_operator(self, tick: float = 1) -> None:
        """CRDs + operator from the chart, watching only the demo namespace."""
        core = client.CoreV1Api(self.api())
        core.create_namespace({"metadata": {"name": self.namespace}})
        values = {
            "watch.allNamespaces": False,
            "watch.namespaces": [self.namespace],
            "prometheus.url": self.cluster.prometheus_url,
            "tick": tick,
            "logFormat": "plain",
            # Pods share 127.0.0.N with any other local cluster on the machine: a rare port.
            "metrics.port": 18481,
            # A busy laptop may take a while to import Kopf: no liveness restarts meanwhile,
            # and readiness checked often so the demo starts as soon as it can.
            "livenessProbe.initialDelaySeconds": 120,
            "readinessProbe.initialDelaySeconds": 1,
            "readinessProbe.periodSeconds": 2,
        }
        flags = [x for k, v in values.items() for x in ("--set-json", f"{k}={json.dumps(v)}")]
        self.helm("install", self.release, str(CHART), "--namespace", self.operator_ns,
                  "--create-namespace", *flags)  # fmt: skip
        self.installed = True
        apps = client.AppsV1Api(self.api())

        def available() -> bool:
            deps = apps.list_namespaced_deployment(
                self.operator_ns, label_selector=f"app.kubernetes.io/instance={self.release}"
            ).items
            return bool(deps) and all((d.status.available_replicas or 0) >= 1 for d in deps)

        wait_for(available, timeout=180, message="the operator Deployment to be Available")

    def apply(self, body: dict[str, Any]) -> None:
        custom = client.CustomObjectsApi(self.api())
        name = body["metadata"]["name"]
        try:
            custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
            return
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": body["spec"]}
        )

    def get(self, name: str) -> dict[str, Any]:
        custom = client.CustomObjectsApi(self.api())
        return custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def event_reasons(self, name: str, seen: set[str]) -> list[str]:
        """Reasons of the ModelDeployment's Events not in `seen` (uids), oldest first."""
        items = (
            client.CoreV1Api(self.api())
            .list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={name}")
            .items
        )
        new = [e for e in items if e.metadata.uid not in seen]
        seen.update(e.metadata.uid for e in new)
        new.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        return [e.reason for e in new]

    def ready_endpoints(self, service: str) -> int:
        slices = client.DiscoveryV1Api(self.api()).list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        return sum(
            1 for s in slices.items for e in s.endpoints or []
            if e.conditions and e.conditions.ready
        )  # fmt: skip

    def operator_log(self) -> str:
        """The operator pods' logs (the local node keeps them in its pod directories)."""
        return self.pod_logs(self.operator_ns)

    def pod_logs(self, namespace: str, restarted_only: bool = False, tail: int = 3000) -> str:
        """The tail of each pod's log in `namespace` (only restarted pods if asked)."""
        pods = client.CoreV1Api(self.api()).list_namespaced_pod(namespace).items
        logs = []
        for pod in pods:
            restarts = sum(c.restart_count for c in pod.status.container_statuses or [])
            if restarted_only and not restarts:
                continue
            with contextlib.suppress(NoSuchPod, OSError):
                text = self.cluster.logs(pod.metadata.name, namespace)[-tail:]
                logs.append(f"--- pod {namespace}/{pod.metadata.name}:\n{text}")
        return "".join(logs)

    def close(self, keep: bool = False) -> str:
        """Stop what the demo started: the whole cluster, or its objects in `current`.

        With `keep`, a cluster the demo started stays up; returns how to reach and stop it.
        """
        try:
            if keep and self.own_root is not None:
                return (
                    f"cluster kept: export KUBECONFIG={self.cluster.kubeconfig}\n"
                    f"  stop it: MODELDEPLOY_DEVCLUSTER_DIR={self.own_root} "
                    "modeldeploy-devcluster down"
                )
            if self.own_root is not None:
                launcher.down(self.own_root)
                shutil.rmtree(self.own_root.parent, ignore_errors=True)
                return "local cluster stopped (no process left)"
            if self.installed:
                self.helm("uninstall", self.release, "--namespace", self.operator_ns, "--wait")
            with contextlib.suppress(client.ApiException):
                client.CoreV1Api(self.api()).delete_namespace(self.namespace)
        finally:
            if self._api is not None:
                self._api.close()
            shutil.rmtree(self.helm_home, ignore_errors=True)
        return f"removed the demo's release {self.release} and namespace {self.namespace}"
