"""`make bench` entry: detection-to-rollback (live, then stand-in), then scale.

`--quick`: fewer runs, N=100. The live rollback starts its own local
cluster; the stand-in rollback and scale need one in `MODELDEPLOY_KUBECONFIG`
(e.g. from `modeldeploy-devcluster up`) and are skipped without it.
"""

from __future__ import annotations

import os

from benchmarks.operator import rollback, rollback_live, scale


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    runs = "3" if quick else "5"
    status = rollback_live.main(["--runs", runs])
    if not os.environ.get("MODELDEPLOY_KUBECONFIG"):
        print("stand-in rollback and scale skipped: set MODELDEPLOY_KUBECONFIG to a cluster "
              "(modeldeploy-devcluster up; modeldeploy-devcluster kubeconfig)")  # fmt: skip
        return status
    status |= rollback.main(["--runs", runs, "--interval", "5s"])
    status |= scale.main(["--counts", "100" if quick else "100,300,1000"])
    return status
