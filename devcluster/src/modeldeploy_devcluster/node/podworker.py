"""One thread per pod bound to this node: the kubelet's job for that pod.

It gives the pod a loopback address, fetches service-account credentials,
starts the containers, ticks them (restarts, probes), reports status when
it changes and, on deletion, stops the processes within the grace period and
finalises the pod (delete with grace 0), freeing its address.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from modeldeploy_devcluster.node import (
    bindshim,
    credentials,
    envexpand,
    images,
    ipalloc,
    podenv,
    probes,
)
from modeldeploy_devcluster.node.container import Container, Launch, rfc3339
from modeldeploy_devcluster.node.ipalloc import IpAllocator

log = logging.getLogger("modeldeploy_devcluster.node")
TICK = 0.2


@dataclass(frozen=True)
class NodeContext:
    core: client.CoreV1Api
    allocator: IpAllocator
    pods_dir: Path
    images_file: Path
    node_name: str
    server: str
    ca_cert: Path
    # The wildcard-bind shim (bindshim.c) preloaded into every container.
    bind_shim: Path


def pod_dir_name(pod: dict) -> str:
    meta = pod["metadata"]
    return f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"


def pod_phase(containers: list[Container]) -> str:
    if any(c.running for c in containers):
        return "Running"
    if containers and all(c.terminated is not None for c in containers):
        codes = [c.terminated["exitCode"] for c in containers if c.terminated]
        return "Succeeded" if all(code == 0 for code in codes) else "Failed"
    if any(c.restart_count for c in containers):
        return "Running"  # between restarts
    return "Pending"


class PodWorker(threading.Thread):
    def __init__(self, ctx: NodeContext, pod: dict) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.ctx = ctx
        self.pod = pod
        self.uid: str = meta["uid"]
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.dir = ctx.pods_dir / pod_dir_name(pod)
        self.stop_event = threading.Event()
        self.gone = threading.Event()  # the API object no longer exists
        self.finished = threading.Event()
        self.shutdown_only = False  # node is going down: stop processes, keep the pod
        self.containers: list[Container] = []
        self.kubeconfig: Path | None = None
        self.ip = ""
        self.start_time = ""
        self.transitions: dict[str, tuple[str, str]] = {}
        self.last_status: dict | None = None

    # -- events from the agent ---------------------------------------------

    def update(self, pod: dict) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.stop_event.set()

    def deleted(self) -> None:
        self.gone.set()
        self.stop_event.set()

    def shutdown(self) -> None:
        self.shutdown_only = True
        self.stop_event.set()

    # -- setup --------------------------------------------------------------

    def _read(self, kind: str):
        def reader(namespace: str, name: str) -> dict[str, str] | None:
            try:
                if kind == "configmap":
                    return self.ctx.core.read_namespaced_config_map(name, namespace).data or {}
                return podenv.decode_secret(
                    self.ctx.core.read_namespaced_secret(name, namespace).data
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        return reader

    def _launch(self, spec: dict) -> Launch:
        env = podenv.base_env(self.pod["metadata"]["name"])
        if self.kubeconfig:
            env["KUBECONFIG"] = str(self.kubeconfig)
        try:
            mapping = images.load()
            mapping.update(images.read_file(self.ctx.images_file))
            argv = images.resolve(
                mapping, spec.get("image", ""), spec.get("command"), spec.get("args")
            )
        except (images.ImageError, ValueError) as exc:
            return Launch(None, env, "ErrImagePull", str(exc))
        try:
            own = podenv.container_env(
                self.pod, spec, self._read("configmap"), self._read("secret")
            )
        except (podenv.EnvError, ApiException) as exc:
            reason = getattr(exc, "reason", "") or str(exc)
            return Launch(None, env, "CreateContainerConfigError", str(reason))
        env.update(own)
        # A pod here shares the host's network namespace: its wildcard binds
        # land on its own address, as if it had interfaces of its own.
        env = bindshim.preload_env(env, self.ctx.bind_shim, self.ip)
        return Launch(envexpand.expand_all(argv, own), env)

    def _setup(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ip = self.ctx.allocator.allocate(self.uid, busy=ipalloc.listening_addresses())
        status = self.pod.setdefault("status", {})
        status.update({"podIP": self.ip, "podIPs": [{"ip": self.ip}], "hostIP": "127.0.0.1"})
        self.start_time = status.get("startTime") or rfc3339(time.time())
        spec = self.pod["spec"]
        if credentials.wants_token(self.pod):
            # The Node authorizer learns about the pod's binding asynchronously: retry.
            for _ in range(50):
                try:
                    token = credentials.request_token(self.ctx.core, self.pod)
                    self.kubeconfig = credentials.write(
                        self.dir, self.pod, token, self.ctx.server, self.ctx.ca_cert
                    )
                    break
                except ApiException as exc:
                    log.info("%s: token request failed (%s), retrying", self.key, exc.status)
                    if self.stop_event.wait(0.2):
                        return
            else:
                log.error("%s: no service-account token; containers run without one", self.key)
        policy = spec.get("restartPolicy") or "Always"
        grace = float(spec.get("terminationGracePeriodSeconds", 30))
        for c in spec.get("containers", []):
            ports = {p["name"]: p["containerPort"] for p in c.get("ports") or [] if p.get("name")}
            try:
                specs = (
                    probes.parse(c.get("readinessProbe"), self.ip, ports),
                    probes.parse(c.get("livenessProbe"), self.ip, ports),
                    probes.parse(c.get("startupProbe"), self.ip, ports),
                )
            except probes.ProbeSpecError as exc:
                log.warning("%s/%s: %s; probe ignored", self.key, c["name"], exc)
                specs = (None, None, None)
            self.containers.append(
                Container(c, self.dir, policy, functools.partial(self._launch, c), specs, grace)
            )

    # -- status -------------------------------------------------------------

    def _condition(self, kind: str, ok: bool, now: float) -> dict:
        value = "True" if ok else "False"
        if self.transitions.get(kind, ("", ""))[0] != value:
            self.transitions[kind] = (value, rfc3339(now))
        return {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": self.transitions[kind][1],
        }

    def _status(self, now: float) -> dict:
        statuses = [c.status() for c in self.containers]
        ready = bool(self.containers) and all(c.ready for c in self.containers)
        return {
            "phase": pod_phase(self.containers),
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", True, now),
                self._condition("Initialized", True, now),
                self._condition("ContainersReady", ready, now),
                self._condition("Ready", ready, now),
                self._condition("PodScheduled", True, now),
            ],
            "containerStatuses": statuses,
        }

    def _report(self, now: float) -> None:
        status = self._status(now)
        if status == self.last_status:
            return
        meta = self.pod["metadata"]
        try:
            # A JSON merge patch replaces lists and each container's state
            # wholesale: this node owns them, nothing may be merged in.
            self.ctx.core.patch_namespaced_pod_status(
                meta["name"],
                meta["namespace"],
                {"status": status},
                _content_type="application/merge-patch+json",
            )
            self.last_status = status
        except ApiException as exc:
            if exc.status == 404:
                self.gone.set()
                self.stop_event.set()
            else:
                log.warning("%s: status update failed: %s", self.key, exc.reason)

    # -- run ----------------------------------------------------------------

    def run(self) -> None:
        try:
            self._setup()
            while not self.stop_event.is_set():
                now = time.time()
                for c in self.containers:
                    c.tick(now)
                self._report(now)
                self.stop_event.wait(TICK)
        except Exception:
            log.exception("%s: worker failed", self.key)
        finally:
            self._teardown()
            self.finished.set()

    def _teardown(self) -> None:
        meta = self.pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        if self.shutdown_only:
            grace = min(float(grace), 5.0)
        for c in self.containers:
            c.stop(float(grace))
        self.ctx.allocator.release(self.uid)
        if self.shutdown_only or self.gone.is_set():
            return
        try:
            self.ctx.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
                ),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("%s: final delete failed: %s", self.key, exc.reason)
