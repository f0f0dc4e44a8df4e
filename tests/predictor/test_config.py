"""Settings: flags with environment defaults, flags winning, readable errors."""

from __future__ import annotations

import pytest
from modeldeploy_predictor import cli, config


def parse(argv):
    return config.from_namespace(cli.build_parser().parse_args(["serve", *argv]))


def test_env_sets_defaults_and_flags_win(monkeypatch):
    monkeypatch.setenv("MODELDEPLOY_MODEL_NAME", "fraud")
    monkeypatch.setenv("MODELDEPLOY_TRACK", "canary")
    monkeypatch.setenv("MODELDEPLOY_REVISION", "fraud-1a2b")
    monkeypatch.setenv("MODELDEPLOY_MAX_WAIT_MS", "2.5")
    monkeypatch.setenv("MODELDEPLOY_BATCHING", "false")
    s = parse(["--bundle", "/b", "--track", "shadow"])
    assert (s.model_name, s.track, s.revision) == ("fraud", "shadow", "fraud-1a2b")
    assert s.max_wait_ms == 2.5 and s.batching is False
    assert parse(["--batching"]).batching is True


def test_defaults():
    s = parse([])
    assert s.port == 8080 and s.batching and s.max_batch_size == 32 and s.prediction_log is None


def test_bad_env_value_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setenv("MODELDEPLOY_PORT", "eighty")
    with pytest.raises(SystemExit) as info:
        parse([])
    assert info.value.code == 2
    assert "MODELDEPLOY_PORT='eighty': expected int" in capsys.readouterr().err
