"""Reach a Service from the host, like ``kubectl port-forward svc/NAME``.

There is no kube-proxy on the local cluster, so Service IPs route nowhere.
This listener on 127.0.0.1 resolves the Service port to its target port and
sends each new connection to a ready endpoint from the Service's
EndpointSlices (round robin), re-reading them per connection so that a
rollout is followed. When the API server cannot be reached, the endpoints
last read are used, as kube-proxy keeps its rules through an API outage.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
from collections.abc import Iterator

from kubernetes import client

log = logging.getLogger("modeldeploy_devcluster.forward")


class NoEndpoints(RuntimeError):
    pass


def ready_targets(
    api: client.ApiClient, service: str, namespace: str, port: int
) -> list[tuple[str, int]]:
    """(ip, port) of every ready endpoint behind ``service:port``."""
    svc = client.CoreV1Api(api).read_namespaced_service(service, namespace)
    svc_port = next((p for p in svc.spec.ports or [] if p.port == port), None)
    if svc_port is None:
        known = [p.port for p in svc.spec.ports or []]
        raise NoEndpoints(f"service {namespace}/{service} has no port {port} (ports: {known})")
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
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
        try:
            self.last_targets = ready_targets(self.api, self.service, self.namespace, self.port)
        except NoEndpoints:
            raise
        except Exception as exc:  # API server unreachable or restarting: route as last seen
            refused = isinstance(exc, client.ApiException) and (exc.status or 500) < 500
            if refused or not self.last_targets:
                raise
            log.debug("forward: API unreachable (%s), using the last endpoints", exc)
        return self.last_targets

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
