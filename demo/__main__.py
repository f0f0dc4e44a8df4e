"""`python -m demo`: see demo/__init__.py (what `make demo` runs)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from demo import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="modeldeploy's rollout demo on the local cluster (v1 stable, v2 canary "
        "promoted, v3 canary rolled back on drift, v4 shadow rejected on agreement).",
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"),
                        help="bundles and rollout.png go here (default out/demo)")  # fmt: skip
    parser.add_argument(
        "--cluster", choices=["local", "current"], default=os.environ.get("DEMO_CLUSTER", "local"),
        help="local: start the embedded cluster (default); current: use KUBECONFIG's cluster "
        "(env DEMO_CLUSTER)",
    )  # fmt: skip
    parser.add_argument(
        "--keep", action="store_true", default=bool(os.environ.get("DEMO_KEEP")),
        help="leave the local cluster running afterwards (env DEMO_KEEP=1)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    return run.main(args.out.resolve(), args.cluster == "current", args.keep)


if __name__ == "__main__":
    sys.exit(main())
