"""Release gates on the local cluster with real predictor and router pods.

Dry run: a v2 trained on shifted data fails a dry-run feature-drift bound at
every run, and is promoted all the same, with the failures in status, Events
and the operator's metrics.
"""

from __future__ import annotations

from typing import Any

import pytest
from cluster_helpers import Env
from test_dataplane_cluster import (
    CANARY,
    Load,
    X,
    Y,
    analysis,
    env,
    fitted,
    make_bundle,
    manifest,
    router,
    serve_v1,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
__all__ = ["env"]  # the fixture, imported for the tests below


def test_dry_run_metric_is_shown_but_never_rolls_back(env: Env, tmp_path):
    strategy = {
        **CANARY,
        "analysis": analysis(
            {"name": "error-rate", "max": 0.05},
            {"name": "feature-drift", "max": 0.5, "dryRun": True},
        ),
    }
    serve_v1(env, tmp_path, strategy)
    shifted = X + 4.0
    v2 = make_bundle(tmp_path, "2.0.0", fitted(shifted, Y), shifted)
    with router(env) as url, Load(url):
        env.apply(manifest("2.0.0", v2, strategy))

        def promoted(st: dict[str, Any]) -> bool:
            return st.get("phase") == "Succeeded" and st["stable"]["version"] == "2.0.0"

        st = env.wait_status(promoted, "v2 promoted despite the dry-run drift", timeout=180)
    assert st["analysis"]["failures"] == 0
    assert not any(h.get("result") == "RolledBack" for h in st.get("history", []))
    assert "DryRunMetricFailed" in env.events()
    metrics = env.operator.metrics()
    assert (
        'modeldeploy_operator_measurements_total{dry_run="true",metric="feature-drift",verdict="Fail"}'
        in metrics
    )
