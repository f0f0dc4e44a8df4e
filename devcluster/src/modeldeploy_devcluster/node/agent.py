"""The node agent process: registers a Node and runs the pods bound to it.

Started by the supervisor with a ``system:node:<name>`` client certificate,
so the Node authorizer and NodeRestriction admission limit it exactly like a
kubelet. It watches pods with ``spec.nodeName=<name>`` and hands each to a
PodWorker thread.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import kubernetes
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from modeldeploy_devcluster.node import bindshim
from modeldeploy_devcluster.node.container import rfc3339
from modeldeploy_devcluster.node.ipalloc import claim_block
from modeldeploy_devcluster.node.podworker import NodeContext, PodWorker
from modeldeploy_devcluster.state import Layout

log = logging.getLogger("modeldeploy_devcluster.node")

# Generous on purpose: the scheduler must never be the reason a test pod stays
# Pending on a small machine; these processes are not isolated anyway.
CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "100Gi"}
HEARTBEAT = 10.0


def node_status() -> dict:
    now = rfc3339(time.time())

    def cond(kind: str, status: str, reason: str) -> dict:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": "",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return {
        "capacity": CAPACITY,
        "allocatable": CAPACITY,
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": "localhost"},
        ],
        "conditions": [
            cond("Ready", "True", "KubeletReady"),
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
        ],
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": os.uname().release,
            "osImage": "modeldeploy devcluster (processes)",
            "containerRuntimeVersion": "devcluster://0.1",
            "kubeletVersion": "v0.0.0-devcluster",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


class Agent:
    def __init__(self, layout: Layout, kubeconfig: Path, node_name: str) -> None:
        api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(api)
        cfg = api.configuration
        allocator, self._block_lock = claim_block()
        self.ctx = NodeContext(
            core=self.core,
            allocator=allocator,
            pods_dir=layout.pods,
            images_file=layout.images,
            node_name=node_name,
            server=cfg.host,
            ca_cert=layout.pki / "ca.crt",
            bind_shim=bindshim.ensure(),
        )
        self.node_name = node_name
        self.workers: dict[str, PodWorker] = {}
        self.stopping = threading.Event()
        self.workers_lock = threading.Lock()

    def register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
        }
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        self.core.patch_node_status(
            self.node_name,
            {"status": node_status()},
            _content_type="application/merge-patch+json",
        )

    def _heartbeats(self) -> None:
        while not self.stopping.wait(HEARTBEAT):
            try:
                self.heartbeat()
            except Exception as exc:  # the API server may be going down
                log.warning("heartbeat failed: %s", exc)

    def _handle(self, kind: str, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker:
                worker.deleted()
            return
        if worker is None:
            if pod["metadata"].get("deletionTimestamp") or pod.get("status", {}).get("phase") in (
                "Succeeded",
                "Failed",
            ):
                if pod["metadata"].get("deletionTimestamp"):
                    self._finalise(pod)  # never started here (e.g. before a restart)
                return
            with self.workers_lock:
                # A worker started after shutdown() took its snapshot would be
                # told nothing and could leave a process behind.
                if self.stopping.is_set():
                    return
                worker = PodWorker(self.ctx, pod)
                self.workers[uid] = worker
                worker.start()
        else:
            worker.update(pod)
        # Forget finished workers.
        for done in [u for u, w in self.workers.items() if w.finished.is_set()]:
            del self.workers[done]

    def _finalise(self, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
                ),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("final delete of %s failed: %s", meta["name"], exc.reason)

    def run(self) -> None:
        self.register()
        threading.Thread(target=self._heartbeats, daemon=True, name="heartbeat").start()
        selector = f"spec.nodeName={self.node_name}"
        serialize = self.core.api_client.sanitize_for_serialization
        while not self.stopping.is_set():
            try:
                listing = self.core.list_pod_for_all_namespaces(field_selector=selector)
                for pod in listing.items:
                    self._handle("ADDED", serialize(pod))
                w = watch.Watch()
                for event in w.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=60,
                ):
                    if self.stopping.is_set():
                        w.stop()
                        break
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self._handle(event["type"], event["raw_object"])
            except ApiException as exc:
                if exc.status != 410:  # 410 Gone: relist
                    log.warning("watch failed: %s", exc.reason)
                    self.stopping.wait(1.0)
            except Exception as exc:
                if not self.stopping.is_set():
                    log.warning("watch error: %r", exc)
                    self.stopping.wait(1.0)

    def shutdown(self) -> None:
        """Stop every pod's processes (the pods stay: the cluster is going down)."""
        with self.workers_lock:
            self.stopping.set()
            workers = list(self.workers.values())
        for w in workers:
            w.shutdown()
        for w in workers:
            w.join(timeout=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="cluster state directory")
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the node's kubeconfig")
    parser.add_argument("--node-name", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # probes would log every request
    agent = Agent(Layout(args.dir), args.kubeconfig, args.node_name)
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=agent.run, daemon=True, name="watch").start()
    done.wait()
    agent.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
