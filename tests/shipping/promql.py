"""Every PromQL expression of the Grafana dashboard and the alert rules.

The observability tests parse and evaluate each of them, and the live
rollout test checks which return data; both read them through here so a new
panel is checked without anyone listing it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from . import chart

DASHBOARD = chart.REPO / "docs" / "grafana" / "modeldeploy.json"
ALERTS = chart.REPO / "docs" / "prometheus" / "alerts.yaml"

# What Grafana would put in place of its variables; multi-value variables use
# their "All" value, which is a regex.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "1h",
    "$namespace": ".*",
    "$model": ".*",
}
_VARIABLE = re.compile(r"\$\{?([A-Za-z_]+)\}?")


def expand(expr: str, variables: dict[str, str] | None = None) -> str:
    """Replace Grafana variables ($x and ${x}); an unknown variable is an error."""
    values = {**GRAFANA_VARIABLES, **(variables or {})}

    def sub(m: re.Match[str]) -> str:
        key = "$" + m.group(1)
        if key not in values:
            raise KeyError(f"unknown Grafana variable {m.group(0)} in {expr!r}")
        return values[key]

    return _VARIABLE.sub(sub, expr)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(where, raw expr) of every panel target, annotation and query variable."""
    dash = json.loads(path.read_text())
    found: list[tuple[str, str]] = []
    for panel in _panels(dash["panels"]):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for ann in dash.get("annotations", {}).get("list", []):
        if ann.get("expr"):
            found.append((f"annotation {ann['name']!r}", ann["expr"]))
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            # label_values(SELECTOR, label) is Grafana syntax; its selector is PromQL.
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", var["definition"])
            assert m, f"variable {var['name']}: unexpected query {var['definition']!r}"
            found.append((f"variable {var['name']!r}", m.group(1)))
    return found


def rule_queries(path: Path = ALERTS) -> list[tuple[str, str]]:
    doc = yaml.safe_load(path.read_text())
    return [
        (f"rule {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in doc["groups"]
        for rule in group["rules"]
    ]


def all_queries(variables: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(where, expanded expr) for the dashboard and the rules."""
    return [(w, expand(e, variables)) for w, e in dashboard_queries() + rule_queries()]


# Queries that must return data while a canary of a v2 that fails some
# requests runs under load (the live test's scenario). The others are
# legitimately empty then: shadow series (no shadow), drift alerts (no drift),
# increases of counters that only just appeared.
LIVE_CANARY_NON_EMPTY = [
    "panel 'Rollout phases' A",
    "panel 'Traffic weights' A",
    "panel 'Traffic weights' B",
    "panel 'Track endpoints' A",
    "panel 'Requests per second' A",
    "panel 'Error rate' A",
    "panel 'Latency quantiles' A",
    "panel 'Latency quantiles' B",
    "panel 'Latency quantiles' C",
    "panel 'Model errors and bad input' A",
    "panel 'Router overhead p99' A",
    "panel 'Feature drift (PSI)' A",
    "panel 'Prediction drift (PSI)' A",
    "panel 'Drift window' A",
    "panel 'Reconcile duration p99' A",
    "panel 'Reconcile duration p99' B",
    "variable 'namespace'",
    "variable 'model'",
]


def as_rule_file(queries: list[tuple[str, str]]) -> str:
    """A rule file with each query as a recording rule: `promtool check rules` parses it."""
    rules = [{"record": f"modeldeploy:check_{i}", "expr": e} for i, (_, e) in enumerate(queries)]
    return yaml.safe_dump({"groups": [{"name": "parse-check", "rules": rules}]})
