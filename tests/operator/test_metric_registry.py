"""The builtin metric registry is the one list: the CRD, the runner and the docs agree."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from modeldeploy_operator import spec
from modeldeploy_operator.analysis import queries, registry, runner

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"


def _metric_items_schema() -> dict:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    analysis = schema["properties"]["spec"]["properties"]["strategy"]["properties"]["analysis"]
    return analysis["properties"]["metrics"]


def test_the_crd_needs_a_query_exactly_for_names_outside_the_registry() -> None:
    rules = [r["rule"] for r in _metric_items_schema()["items"]["x-kubernetes-validations"]]
    (rule,) = [r for r in rules if r.endswith("|| has(self.query)")]
    listed = re.search(r"self\.name in \[([^\]]*)\]", rule).group(1)
    assert tuple(n.strip().strip("'") for n in listed.split(",")) == registry.names()
    described = _metric_items_schema()["description"]
    assert all(name in described for name in registry.names())


def test_the_readme_table_lists_every_builtin_with_its_direction_and_bound() -> None:
    text = (ROOT / "README.md").read_text()
    row = r"^\| `([a-z0-9-]+)` \| .*? \| `((?:min|max): [0-9.]+)` \|$"
    rows = dict(re.findall(row, text, re.M))
    assert set(rows) == set(registry.names())
    for m in registry.BUILTIN.values():
        assert rows[m.name] == f"{m.direction}: {m.typical:g}", m.name


def test_the_runner_uses_the_registry_queries() -> None:
    t = queries.Target("ns", "fraud", "fraud-c", "fraud-s", "canary", "30s")
    for m in registry.BUILTIN.values():
        spec_metric = spec.MetricSpec(m.name, **{m.direction: m.typical})
        if m.query is not None:
            assert runner.query_for(spec_metric, t) == m.query(t)
        assert runner.applicable(spec_metric, t) is not m.shadow_only
        shadow = queries.Target("ns", "fraud", "fraud-c", "fraud-s", "shadow", "30s")
        assert runner.applicable(spec_metric, shadow)
