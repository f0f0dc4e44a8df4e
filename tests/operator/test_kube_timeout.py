"""Every API call of the operator is bounded in time (kube.BoundedApiClient)."""

from __future__ import annotations

import socket
import threading

import pytest
import urllib3.exceptions
from kubernetes import client
from modeldeploy_operator import kube, transient


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers a byte."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except TimeoutError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(5)
    for s in held:
        s.close()
    srv.close()


def test_a_silent_api_server_times_out_as_a_transient_error(silent_server, monkeypatch):
    monkeypatch.setattr(kube, "REQUEST_TIMEOUT", (1.0, 0.5))
    cfg = client.Configuration()
    cfg.host = f"http://127.0.0.1:{silent_server}"
    cfg.retries = False
    api = kube.BoundedApiClient(cfg)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError) as caught:
        client.CoreV1Api(api).list_namespace()  # without the bound: waits for ever
    assert "read timeout=0.5" in str(caught.value)
    assert transient.is_transient(caught.value)


def test_b_a_callers_own_timeout_wins(silent_server, monkeypatch):
    monkeypatch.setattr(kube, "REQUEST_TIMEOUT", (1.0, 30.0))
    cfg = client.Configuration()
    cfg.host = f"http://127.0.0.1:{silent_server}"
    cfg.retries = False
    with pytest.raises(urllib3.exceptions.ReadTimeoutError) as caught:
        client.CoreV1Api(kube.BoundedApiClient(cfg)).list_namespace(_request_timeout=(1.0, 0.3))
    assert "read timeout=0.3" in str(caught.value)
