"""Unit tests of the launcher's pure parts: Prometheus config, kubeconfig, wait_for."""

from __future__ import annotations

import itertools

import pytest
import yaml
from modeldeploy_devcluster import kubeconfig, pki, prometheus_config
from modeldeploy_devcluster.waiting import wait_for


def test_prometheus_keeps_annotated_pods_and_labels_them(tmp_path) -> None:
    cfg = prometheus_config.render(
        "https://127.0.0.1:6443", tmp_path / "ca", tmp_path / "c", tmp_path / "k", "3s"
    )
    job = cfg["scrape_configs"][0]
    assert job["scrape_interval"] == "3s"
    assert job["kubernetes_sd_configs"][0] == {
        "role": "pod",
        "api_server": "https://127.0.0.1:6443",
        "tls_config": {
            "ca_file": str(tmp_path / "ca"),
            "cert_file": str(tmp_path / "c"),
            "key_file": str(tmp_path / "k"),
        },
    }
    rules = job["relabel_configs"]
    assert rules[0]["action"] == "keep" and rules[0]["regex"] == "true"
    targets = {r.get("target_label") for r in rules}
    assert {"namespace", "pod", "__address__", "__metrics_path__"} <= targets
    assert any(r.get("action") == "labelmap" for r in rules)
    yaml.safe_dump(cfg)  # serialisable as written to disk


def test_kubeconfig_embeds_credentials(tmp_path) -> None:
    certs = pki.generate(tmp_path, {"admin": ("a", "system:masters")})
    doc = kubeconfig.build(
        "https://127.0.0.1:1",
        certs.ca.cert,
        user="a",
        client_cert=certs.clients["admin"].cert,
        client_key=certs.clients["admin"].key,
        namespace="x",
    )
    path = kubeconfig.write(tmp_path / "kc", doc)
    loaded = yaml.safe_load(path.read_text())
    assert loaded["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"
    assert set(loaded["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}
    assert loaded["contexts"][0]["context"]["namespace"] == "x"
    assert path.stat().st_mode & 0o077 == 0


def test_wait_for_returns_the_truthy_value() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter) >= 3 and "done", timeout=5, interval=0.01) == "done"


def test_wait_for_times_out_with_the_message_and_last_error() -> None:
    def boom() -> None:
        raise KeyError("not yet")

    with pytest.raises(TimeoutError, match=r"the thing.*not yet"):
        wait_for(boom, timeout=0.1, interval=0.01, message="the thing")
