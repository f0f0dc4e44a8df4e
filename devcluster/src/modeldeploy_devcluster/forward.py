"""Reach a Service from the host, like ``kubectl port-forward svc/NAME``.

On a cluster with a real network (kind) that is a NodePort twin of the
Service (``node_port``), or kubectl's own ``port_forward`` to one pod. There
is no kube-proxy on the local cluster, so Service IPs route nowhere.
This listener on 127.0.0.1 resolves the Service port to its target port and
sends each new connection to a ready endpoint from the Service's
EndpointSlices (round robin), re-reading them per connection so that a
rollout is followed. When the API server cannot be reached, or does not
answer within API_WAIT seconds (etcd away: the API server accepts the
connection but holds the read until its storage is back), the endpoints last
read are used, as kube-proxy keeps its rules through an API outage, and the
API is not asked again for API_PAUSE seconds: a connection never waits for
the control plane longer than that.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

from kubernetes import client

from modeldeploy_devcluster.waiting import wait_for

log = logging.getLogger("modeldeploy_devcluster.forward")


# Seconds a new connection may wait for the API to read the endpoints once some
# were read before (the first read waits up to FIRST_READ), and seconds the
# last ones are used without asking after a read failed or timed out. The read
# runs in its own thread (one at a time): the client library retries a timed
# out read, so a timeout on the call alone would not bound the wait.
API_WAIT = 2.0
API_PAUSE = 2.0
FIRST_READ = 30.0
READ_TIMEOUT = 10.0


class NoEndpoints(RuntimeError):
    pass


def ready_targets(
    api: client.ApiClient, service: str, namespace: str, port: int, timeout: float | None = None
) -> list[tuple[str, int]]:
    """(ip, port) of every ready endpoint behind ``service:port``; each API call
    gives up after `timeout` seconds (None: no limit)."""
    kw = {} if timeout is None else {"_request_timeout": timeout}
    svc = client.CoreV1Api(api).read_namespaced_service(service, namespace, **kw)
    svc_port = next((p for p in svc.spec.ports or [] if p.port == port), None)
    if svc_port is None:
        known = [p.port for p in svc.spec.ports or []]
        raise NoEndpoints(f"service {namespace}/{service} has no port {port} (ports: {known})")
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}", **kw
    )
    targets: list[tuple[str, int]] = []
    for s in slices.items:
        match = next((p for p in s.ports or [] if (p.name or "") == (svc_port.name or "")), None)
        if match is None or match.port is None:
            continue
        for ep in s.endpoints or []:
            if ep.conditions is None or ep.conditions.ready is not False:
                targets.extend((addr, match.port) for addr in ep.addresses)
    return sorted(targets)


class Forwarder:
    def __init__(
        self, api: client.ApiClient, service: str, namespace: str, port: int, local_port: int = 0
    ):
        self.api, self.service, self.namespace, self.port = api, service, namespace, port
        self.listener = socket.create_server(("127.0.0.1", local_port))
        self.local_port = self.listener.getsockname()[1]
        self.counter = itertools.count()
        self.closed = threading.Event()
        self.last_targets: list[tuple[str, int]] = []
        self.api_away_until = 0.0  # monotonic; until then the last targets are used
        self._reading: Future[list[tuple[str, int]]] | None = None
        self._reading_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def start(self) -> Forwarder:
        threading.Thread(target=self._accept, daemon=True, name="forward-accept").start()
        return self

    def close(self) -> None:
        self.closed.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _targets(self) -> list[tuple[str, int]]:
        if self.last_targets and time.monotonic() < self.api_away_until:
            return self.last_targets
        wait = API_WAIT if self.last_targets else FIRST_READ
        try:
            self.last_targets = self._read().result(timeout=wait)
        except NoEndpoints:
            raise
        except Exception as exc:  # API server unreachable, restarting or storage away
            refused = isinstance(exc, client.ApiException) and (exc.status or 500) < 500
            if refused or not self.last_targets:
                raise
            self.api_away_until = time.monotonic() + API_PAUSE
            log.info("forward: API unavailable (%r), using the last endpoints", exc)
        return self.last_targets

    def _read(self) -> Future[list[tuple[str, int]]]:
        """The endpoints read in flight, or a new read (a daemon thread)."""
        with self._reading_lock:
            if self._reading is not None and not self._reading.done():
                return self._reading
            future: Future[list[tuple[str, int]]] = Future()
            self._reading = future

        def read() -> None:
            try:
                future.set_result(
                    ready_targets(
                        self.api, self.service, self.namespace, self.port, timeout=READ_TIMEOUT
                    )
                )
            except BaseException as exc:  # handed to the waiting connection
                future.set_exception(exc)

        threading.Thread(target=read, daemon=True, name="forward-read").start()
        return future

    def _serve(self, conn: socket.socket) -> None:
        try:
            targets = self._targets()
            if not targets:
                raise NoEndpoints(f"service {self.namespace}/{self.service} has no ready endpoints")
            target = targets[next(self.counter) % len(targets)]
            upstream = socket.create_connection(target, timeout=10)
            upstream.settimeout(None)
        except Exception as exc:
            log.warning("forward %s/%s:%s: %s", self.namespace, self.service, self.port, exc)
            conn.close()
            return
        back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
        back.start()
        _pump(conn, upstream)
        back.join()
        for sock in (conn, upstream):
            with contextlib.suppress(OSError):
                sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy until EOF, then pass the half-close on (the other direction may go on)."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def forward(
    api: client.ApiClient, service: str, namespace: str, port: int, local_port: int = 0
) -> Iterator[str]:
    fwd = Forwarder(api, service, namespace, port, local_port).start()
    try:
        yield fwd.url
    finally:
        fwd.close()


# -- clusters with a real network (kind, a user's): kubectl does it ------------


def _connects(target: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(target, timeout=1):
            return True
    except OSError:
        return False


def kubectl_binary() -> str:
    """$KUBECTL, the pinned build beside the other binaries, or kubectl on PATH."""
    from modeldeploy_devcluster import binaries

    candidates = [os.environ.get("KUBECTL", "")]
    if cache := binaries.bin_dir():
        candidates.append(str(cache / "kubectl"))
    candidates.append(shutil.which("kubectl") or "")
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise NoEndpoints("no kubectl: `hack/build-binaries.sh node` builds it, or set KUBECTL")


@contextlib.contextmanager
def port_forward(kubeconfig: Path, target: str, namespace: str, port: int) -> Iterator[str]:
    """``kubectl port-forward TARGET :PORT`` (``pod/NAME``, ``service/NAME``); yields its URL."""
    cmd = [kubectl_binary(), "--kubeconfig", str(kubeconfig), "-n", namespace,
           "port-forward", target, f":{port}"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        found = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", first)
        if not found:
            raise NoEndpoints(f"kubectl port-forward {namespace}/{target}:{port}: {first.strip()}")
        # Keep draining its output so that a full pipe never blocks it.
        threading.Thread(target=proc.communicate, daemon=True).start()
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def api_logs(api: client.ApiClient, pod: str, namespace: str, container: str | None) -> str:
    """A pod's log through the API (every container when none is named)."""
    core = client.CoreV1Api(api)
    if container is not None:
        return core.read_namespaced_pod_log(pod, namespace, container=container)
    spec = core.read_namespaced_pod(pod, namespace).spec
    names = [c.name for c in spec.containers]
    if len(names) == 1:
        return core.read_namespaced_pod_log(pod, namespace, container=names[0])
    return "".join(
        f"==> {n} <==\n{core.read_namespaced_pod_log(pod, namespace, container=n)}" for n in names
    )


@contextlib.contextmanager
def node_port(api: client.ApiClient, service: str, namespace: str, port: int) -> Iterator[str]:
    """The Service reached through kube-proxy from this machine; yields its URL.

    A NodePort twin of the Service (same selector and port) lives for the
    block: connections go to the node's address, through kube-proxy's rules, to
    any ready endpoint, so a rollout behind the Service is followed as it would
    be for clients in the cluster (kubectl port-forward pins one pod, and a
    single reset connection ends it).
    """
    core = client.CoreV1Api(api)
    svc = core.read_namespaced_service(service, namespace)
    svc_port = next((p for p in svc.spec.ports or [] if p.port == port), None)
    if svc_port is None:
        raise NoEndpoints(f"service {namespace}/{service} has no port {port}")
    twin = {
        "metadata": {"name": f"{service}-nodeport", "labels": {"modeldeploy.io/test-access": "1"}},
        "spec": {
            "type": "NodePort",
            "selector": svc.spec.selector,
            "ports": [{"name": svc_port.name or "http", "port": port,
                       "targetPort": svc_port.target_port, "protocol": "TCP"}],
        },
    }  # fmt: skip
    made = core.create_namespaced_service(namespace, twin)
    try:
        nodes = core.list_node().items
        address = next(
            a.address for n in nodes for a in n.status.addresses or [] if a.type == "InternalIP"
        )
        target = (address, made.spec.ports[0].node_port)
        # kube-proxy programs the new port within a moment; until then connections are refused.
        wait_for(lambda: _connects(target), timeout=30, message=f"kube-proxy to open {target}")
        yield f"http://{address}:{target[1]}"
    finally:
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_service(made.metadata.name, namespace)
