"""Operator flags and their environment fallbacks."""

from __future__ import annotations

import logging
import random

import pytest
from modeldeploy_operator import cli, config


def test_defaults_watch_all_namespaces(monkeypatch):
    for name in ("MODELDEPLOY_NAMESPACE", "MODELDEPLOY_PROMETHEUS_URL", "KUBECONFIG"):
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
    monkeypatch.setenv("MODELDEPLOY_NAMESPACE", "ml, staging")
    monkeypatch.setenv("MODELDEPLOY_PEERING", "modeldeploy")
    c = config.from_args([])
    assert c.prometheus_url == "http://prom:9090"
    assert c.namespaces == ("ml", "staging") and not c.all_namespaces
    assert c.peering == "modeldeploy" and c.warnings == ()


@pytest.mark.parametrize("option", config.OPTIONS, ids=lambda o: o.flag)
def test_every_flag_has_its_env_variable_and_config_default(option, monkeypatch):
    """MODELDEPLOY_<FLAG> sets what the flag sets; the help names the variable."""
    assert option.env == "MODELDEPLOY_" + option.flag[2:].replace("-", "_").upper()
    assert option.env in config.parser().format_help()
    value = {"--log-format": "json", "--log-level": "debug"}.get(option.flag)
    value = value or {int: "7", float: "2.5"}.get(option.type, "x")
    monkeypatch.setenv(option.env, value)
    got = getattr(config.from_args([]), option.dest)
    assert got == option.type(value) or (option.dest == "priority" and got == 7)


def test_namespace_flags_have_env_variables_too(monkeypatch):
    monkeypatch.setenv("MODELDEPLOY_ALL_NAMESPACES", "true")
    assert config.from_args([]).all_namespaces
    help_text = config.parser().format_help()
    assert "MODELDEPLOY_NAMESPACE," in help_text and "MODELDEPLOY_ALL_NAMESPACES" in help_text


@pytest.mark.parametrize(
    ("old", "new", "value", "field", "expected"),
    [
        ("MODELDEPLOY_TICK_SECONDS", "MODELDEPLOY_TICK", "0.5", "tick", 0.5),
        ("MODELDEPLOY_NAMESPACES", "MODELDEPLOY_NAMESPACE", "a,b", "namespaces", ("a", "b")),
    ],
)
def test_deprecated_env_names_still_work_with_a_warning(
    old, new, value, field, expected, monkeypatch
):
    monkeypatch.delenv(new, raising=False)
    monkeypatch.setenv(old, value)
    c = config.from_args([])
    assert getattr(c, field) == expected
    assert c.warnings == (f"{old} is deprecated and will be ignored in a later release: use {new}",)
    monkeypatch.setenv(new, value)  # the new name wins and nothing is said
    assert config.from_args([]).warnings == ()


def test_a_bad_env_value_names_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("MODELDEPLOY_METRICS_PORT", "eighty")
    with pytest.raises(SystemExit):
        config.from_args([])
    assert "MODELDEPLOY_METRICS_PORT='eighty': expected int" in capsys.readouterr().err


def test_namespace_and_all_namespaces_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        config.from_args(["--namespace", "a", "--all-namespaces"])
    assert "not allowed with argument" in capsys.readouterr().err


class TestPeeringPriority:
    def test_peering_without_priority_draws_one(self, monkeypatch):
        monkeypatch.delenv("MODELDEPLOY_PRIORITY", raising=False)
        c = config.from_args(["--peering", "modeldeploy"])
        low, high = config.PRIORITY_RANGE
        assert c.priority_random and low <= c.priority <= high

    def test_replicas_with_the_same_arguments_get_different_priorities(self):
        rng = random.Random(7)
        drawn = {config.peering_priority("modeldeploy", None, rng)[0] for _ in range(20)}
        assert len(drawn) == 20

    def test_explicit_priority_is_kept(self, monkeypatch):
        assert config.from_args(["--peering", "p", "--priority", "0"]).priority == 0
        monkeypatch.setenv("MODELDEPLOY_PRIORITY", "42")
        c = config.from_args(["--peering", "p"])
        assert c.priority == 42 and not c.priority_random

    def test_standalone_has_priority_zero(self, monkeypatch):
        monkeypatch.delenv("MODELDEPLOY_PRIORITY", raising=False)
        monkeypatch.delenv("MODELDEPLOY_PEERING", raising=False)
        c = config.from_args([])
        assert c.peering is None and c.priority == 0 and not c.priority_random


class TestLogLevel:
    def test_default_info_flag_and_environment(self, monkeypatch):
        monkeypatch.delenv("MODELDEPLOY_LOG_LEVEL", raising=False)
        assert config.from_args([]).log_level == "info"
        assert config.from_args(["--log-level", "DEBUG"]).log_level == "debug"
        monkeypatch.setenv("MODELDEPLOY_LOG_LEVEL", "warning")
        assert config.from_args([]).log_level == "warning"
        assert config.from_args(["--log-level", "error"]).log_level == "error"

    def test_bad_level_is_refused_with_the_choices(self, monkeypatch, capsys):
        with pytest.raises(SystemExit):
            config.from_args(["--log-level", "verbose"])
        assert "invalid choice: 'verbose'" in capsys.readouterr().err
        monkeypatch.setenv("MODELDEPLOY_LOG_LEVEL", "loud")
        with pytest.raises(SystemExit):
            config.from_args([])
        err = capsys.readouterr().err
        assert "MODELDEPLOY_LOG_LEVEL" in err and "'loud'" in err and "debug, info" in err

    @pytest.mark.parametrize(
        ("level", "ours", "kopf_objects", "root"),
        [
            ("debug", logging.DEBUG, logging.DEBUG, logging.INFO),
            ("info", logging.INFO, logging.WARNING, logging.INFO),
            ("warning", logging.WARNING, logging.WARNING, logging.WARNING),
            ("error", logging.ERROR, logging.ERROR, logging.ERROR),
        ],
    )
    def test_levels_of_the_operator_and_kopf_loggers(self, level, ours, kopf_objects, root):
        levels = cli.logger_levels(level)
        assert levels["modeldeploy_operator"] == ours and levels["kopf"] == ours
        assert levels["kopf.objects"] == kopf_objects and levels[""] == root
        # the PromQL client's one INFO line per query stays out of the log
        assert levels["httpx"] == max(ours, logging.WARNING)

    def test_configure_logging_applies_the_levels(self):
        names = list(cli.logger_levels("info"))
        saved = {
            n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in names
        }
        try:
            cli.configure_logging("plain", "error")
            assert logging.getLogger("modeldeploy_operator.reconcile").getEffectiveLevel() == (
                logging.ERROR
            )
            assert logging.getLogger("kopf._core.engines.peering").getEffectiveLevel() == (
                logging.ERROR
            )
        finally:
            for n, (level, handlers) in saved.items():
                logging.getLogger(n).setLevel(level)
                logging.getLogger(n).handlers[:] = handlers
