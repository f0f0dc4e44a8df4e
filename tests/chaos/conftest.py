"""The chaos suite: faults injected into a rollout in progress, under load.

Short cases run in every `make test`; the long matrix and the soak (marker
`chaos_long`) only when MODELDEPLOY_CHAOS_LONG=1 (`make chaos`), because they
take many minutes on a 2-core machine. Every case records its figures (users'
failed requests, times to recovery); they are printed at the end of the run
and, with MODELDEPLOY_CHAOS_FIGURES=FILE, appended to FILE as JSON lines.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

# importlib import mode puts no test folder on sys.path: this folder's helpers
# (faults, users) and the operator tests' (cluster_helpers, dataplane, faulty_models).
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "operator")]

FIGURES: list[dict[str, Any]] = []


def long_enabled() -> bool:
    return os.environ.get("MODELDEPLOY_CHAOS_LONG", "") in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if long_enabled():
        return
    # Deselected, not skipped: leaving them out is the choice of this run, not a
    # missing tool (`make chaos` runs them).
    chosen = [i for i in items if not i.get_closest_marker("chaos_long")]
    dropped = [i for i in items if i.get_closest_marker("chaos_long")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = chosen


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A dict the test fills with its measurements; reported after the run."""
    record: dict[str, Any] = {"case": request.node.name}
    yield record
    if len(record) > 1:
        FIGURES.append(record)
        if path := os.environ.get("MODELDEPLOY_CHAOS_FIGURES"):
            with open(path, "a") as out:
                out.write(json.dumps(record) + "\n")


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("chaos figures")
    for record in FIGURES:
        rest = ", ".join(f"{k}={v}" for k, v in record.items() if k != "case")
        terminalreporter.write_line(f"{record['case']}: {rest}")
