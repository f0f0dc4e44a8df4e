"""Fault helpers for the chaos suite; each one names exactly what it breaks.

Control-plane components (kube-apiserver, etcd, Prometheus, ...) are stopped
and started by the local cluster's supervisor (`Cluster.stop_component`);
pods are hit through the processes the devcluster node runs for them; the
operator is the test's own subprocess (`OperatorProcess.stop(SIGKILL)`);
etcd's history is compacted through its own v3 JSON gateway (`compact_etcd`).
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from cluster_helpers import wait_for
from kubernetes import client
from modeldeploy_devcluster.cluster import Cluster
from modeldeploy_devcluster.state import State


def kill_pod_processes(cluster: Cluster, namespace: str, pod: str) -> int:
    """SIGKILL every container process group of one pod, as the OOM killer or a
    crashed runtime would: its open connections drop mid-request. The pod object
    stays; the node restarts the container (restartPolicy Always). Returns the
    number of process groups killed."""
    killed = 0
    for pgid_file in cluster.pod_dir(pod, namespace).glob("*.pgid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pgid_file.read_text()), signal.SIGKILL)
            killed += 1
    return killed


def running_pods(api: client.ApiClient, namespace: str, selector: str) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
    return sorted(
        p.metadata.name
        for p in pods
        if p.status.phase == "Running" and not p.metadata.deletion_timestamp
    )


def pod_pids(cluster: Cluster, namespace: str, pod: str) -> list[int]:
    """Every live process of a pod's containers (their process groups)."""
    groups = {int(f.read_text()) for f in cluster.pod_dir(pod, namespace).glob("*.pgid")}
    return [pid for pid in _all_pids() if _pgid(pid) in groups]


def rss_kib(pids: list[int]) -> int:
    """Resident memory of these processes together (VmRSS), KiB."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def open_fds(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


def threads(pids: list[int]) -> int:
    """Tasks (threads) of these processes together (/proc/PID/status Threads)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    total += int(line.split()[1])
    return total


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except OSError:
        return -1


@contextlib.contextmanager
def events_refused(api: client.ApiClient, namespace: str) -> Iterator[None]:
    """While inside: the API server refuses every Event about a ModelDeployment in
    `namespace` (a ValidatingAdmissionPolicy, as a policy engine or a broken
    events pipeline would). Nothing else is refused."""
    name = f"chaos-no-md-events-{namespace}"[:63]
    admission = client.AdmissionregistrationV1Api(api)
    admission.create_validating_admission_policy(
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["events"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "object.involvedObject.kind != 'ModelDeployment'",
                        "message": "chaos: Events about ModelDeployments are refused",
                    }
                ],
            },
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        }
    )
    try:
        wait_for(lambda: not _event_accepted(api, namespace), 30, message="the policy to apply")
        yield
    finally:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)
        wait_for(lambda: _event_accepted(api, namespace), 30, message="the policy to be gone")


def _event_accepted(api: client.ApiClient, namespace: str) -> bool:
    """Post (and delete) a probe Event about a ModelDeployment; True if accepted."""
    core = client.CoreV1Api(api)
    name = f"chaos-probe-{time.time_ns()}"
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "involvedObject": {"kind": "ModelDeployment", "name": "probe", "namespace": namespace},
        "reason": "Probe",
        "message": "chaos suite probe",
        "type": "Normal",
    }
    try:
        core.create_namespaced_event(namespace, body)
    except client.ApiException as exc:
        if exc.status in (400, 403, 422):
            return False
        raise
    core.delete_namespaced_event(name, namespace)
    return True


def etcd_client_url(cluster: Cluster) -> str:
    """The client URL of the cluster's etcd (from its command line)."""
    state = State.load(cluster.layout)
    pid = state.components["etcd"] if state else 0
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    flag = "--listen-client-urls="
    return next(a[len(flag) :] for a in args if a.startswith(flag)).split(",")[0]


def compact_etcd(cluster: Cluster) -> int:
    """Compact etcd's history up to its current revision, through etcd's own v3
    JSON gateway (as `etcdctl compact --physical` would): every older
    resourceVersion is gone from storage. Returns that revision."""
    url = etcd_client_url(cluster)
    key = base64.b64encode(b"/").decode()
    head = httpx.post(f"{url}/v3/kv/range", json={"key": key}, timeout=10)
    head.raise_for_status()
    revision = int(head.json()["header"]["revision"])
    answer = httpx.post(
        f"{url}/v3/kv/compaction", json={"revision": str(revision), "physical": True}, timeout=30
    )
    answer.raise_for_status()
    return revision
