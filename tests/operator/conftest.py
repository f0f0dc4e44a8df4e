"""Shared helpers for the operator tests: `md_factories` is importable from here."""

import sys
from pathlib import Path

# importlib import mode puts no test folder on sys.path; the helpers module is
# plain code shared by several test files, so make its folder importable.
sys.path.insert(0, str(Path(__file__).parent))


def pytest_terminal_summary(terminalreporter) -> None:
    helpers = sys.modules.get("cluster_helpers")  # only when a cluster test was collected
    for reason in dict.fromkeys(getattr(helpers, "SKIPPED", ())):
        terminalreporter.section("OPERATOR CLUSTER TESTS SKIPPED", sep="!", red=True, bold=True)
        terminalreporter.write_line(reason, red=True)
