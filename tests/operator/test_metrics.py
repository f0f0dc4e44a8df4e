"""The operator's process-wide gauges: counting by label, and what counts as paused."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from modeldeploy_operator import metrics, spec
from modeldeploy_operator.analysis.verdicts import Verdict
from modeldeploy_operator.rollout import pauses
from modeldeploy_operator.status import Status
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.metrics import MetricWrapperBase

ALERTS = Path(__file__).resolve().parents[2] / "docs" / "prometheus" / "alerts.yaml"
SELECTOR = re.compile(r"(modeldeploy_operator_\w+)(?:\{([^}]*)\})?")
# Equality matchers only: `result!="ok"` names a value that is not required to exist.
LABEL = re.compile(r'(\w+)="([^"]*)"')


def test_tally_counts_values_and_keeps_known_labels_at_zero():
    counts = metrics.tally(["Canary", "Paused", "Canary", "Odd"], ["Canary", "Paused", "Failed"])
    assert counts == {"Canary": 2, "Paused": 1, "Failed": 0, "Odd": 1}
    assert metrics.tally([], pauses.PAUSE_REASONS) == dict.fromkeys(pauses.PAUSE_REASONS, 0)


def test_set_counts_drops_labels_that_are_gone():
    registry = CollectorRegistry()
    gauge = Gauge("t_paused", "test", ["reason"], registry=registry)
    metrics.set_counts(gauge, "reason", {"ManualPause": 2, "Odd": 1})
    metrics.set_counts(gauge, "reason", {"ManualPause": 0})
    text = generate_latest(registry).decode()
    assert 't_paused{reason="ManualPause"} 0.0' in text
    assert "Odd" not in text


def test_pause_reason_only_while_phase_is_paused():
    paused = {"reason": "InconclusiveAnalysis", "message": "3 inconclusive runs"}
    assert (
        pauses.pause_reason(Status.from_api({"phase": "Paused", "paused": paused}))
        == "InconclusiveAnalysis"
    )
    # A pause left over in a finished rollout is not waiting for anyone.
    assert pauses.pause_reason(Status.from_api({"phase": "RolledBack", "paused": paused})) is None
    assert pauses.pause_reason(Status.from_api({"phase": "Canary", "paused": None})) is None
    assert pauses.pause_reason(Status.from_api({"phase": "Paused"})) == "Unknown"


def _operator_series_in_alerts() -> list[tuple[str, dict[str, str]]]:
    """(metric, {label: value}) for every operator series the alert rules select."""
    rules = yaml.safe_load(ALERTS.read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    found = []
    for expr in exprs:
        for name, matchers in SELECTOR.findall(expr):
            found.append((name, dict(LABEL.findall(matchers))))
    return found


def test_alert_rules_select_series_the_operator_exports():
    exported = {
        m.describe()[0].name: m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)
    }
    known_values = {
        "phase": {str(p) for p in spec.Phase},
        "reason": set(pauses.PAUSE_REASONS),
        "verdict": {str(v) for v in Verdict},
        "result": {"ok", "error", "unreachable"},
    }
    series = _operator_series_in_alerts()
    names = {name for name, _ in series}
    assert {"modeldeploy_operator_info", "modeldeploy_operator_paused_rollouts"} <= names
    for name, labels in series:
        # prometheus_client strips _total from a counter's name.
        metric = exported.get(name) or exported.get(name.removesuffix("_total"))
        assert metric is not None, f"{name} in alerts.yaml is not exported"
        for label, value in labels.items():
            assert label in metric._labelnames, f"{name} has no label {label}"
            assert value in known_values[label], f"{name}{{{label}={value!r}}} never written"


def test_info_is_one_with_the_installed_version():
    metrics.export_info()
    text = generate_latest().decode()
    assert f'modeldeploy_operator_info{{version="{metrics.version()}"}} 1.0' in text
    assert metrics.version() != "unknown"  # the test venv installs the package
