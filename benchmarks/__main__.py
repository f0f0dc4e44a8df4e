"""``python -m benchmarks [NAME ...] [ARGS ...]``: run the sub-benchmarks (``make bench``).

Each sub-folder with a ``run.py`` exposing ``main(argv) -> int`` is a benchmark,
so components add theirs without editing this file. With no names, all run;
the arguments after the names (e.g. ``--quick``) go to each.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.parent.name for p in HERE.glob("*/run.py"))


def main(argv: list[str]) -> int:
    names = []
    while argv and not argv[0].startswith("-"):
        if argv[0] not in available():
            print(f"unknown benchmark {argv[0]!r}; available: {available()}", file=sys.stderr)
            return 2
        names.append(argv.pop(0))
    rest = argv
    status = 0
    for name in names or available():
        print(f"=== benchmark: {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}.run")
        status |= module.main(rest)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
