"""Operator flags and their environment fallbacks."""

from __future__ import annotations

import pytest
from modeldeploy_operator import config


def test_defaults_watch_all_namespaces(monkeypatch):
    for name in ("MODELDEPLOY_NAMESPACES", "MODELDEPLOY_PROMETHEUS_URL", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    c = config.from_args([])
    assert c.all_namespaces and c.namespaces == ()
    assert c.prometheus_url == "http://127.0.0.1:9090"
    assert c.peering is None


def test_repeatable_namespaces_and_flags():
    c = config.from_args(
        ["--namespace", "a", "-n", "b", "--prometheus-url", "http://p:9090", "--tick", "1"]
    )
    assert c.namespaces == ("a", "b") and not c.all_namespaces
    assert c.prometheus_url == "http://p:9090" and c.tick == 1.0


def test_environment_fallbacks(monkeypatch):
    monkeypatch.setenv("MODELDEPLOY_PROMETHEUS_URL", "http://prom:9090")
    monkeypatch.setenv("MODELDEPLOY_NAMESPACES", "ml, staging")
    monkeypatch.setenv("MODELDEPLOY_PEERING", "modeldeploy")
    c = config.from_args([])
    assert c.prometheus_url == "http://prom:9090"
    assert c.namespaces == ("ml", "staging") and not c.all_namespaces
    assert c.peering == "modeldeploy"


def test_namespace_and_all_namespaces_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        config.from_args(["--namespace", "a", "--all-namespaces"])
    assert "not allowed with argument" in capsys.readouterr().err
