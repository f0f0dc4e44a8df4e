"""`make bench` entry: detection-to-rollback, then scale (`--quick`: fewer runs, N=100).

Needs a cluster: `MODELDEPLOY_KUBECONFIG` (e.g. from `modeldeploy-devcluster up`);
without one the operator benchmarks say so and are skipped.
"""

from __future__ import annotations

import os

from benchmarks.operator import rollback, scale


def main(argv: list[str]) -> int:
    if not os.environ.get("MODELDEPLOY_KUBECONFIG"):
        print("operator benchmarks skipped: set MODELDEPLOY_KUBECONFIG to a cluster "
              "(modeldeploy-devcluster up; modeldeploy-devcluster kubeconfig)")  # fmt: skip
        return 0
    quick = "--quick" in argv
    status = rollback.main(["--runs", "3" if quick else "5", "--interval", "5s"])
    status |= scale.main(["--counts", "100" if quick else "100,300,1000"])
    return status
