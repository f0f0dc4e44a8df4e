"""The whole demo scenario on the local cluster, as `make demo` runs it.

Uses the session's cluster (pytest plugin) instead of starting one: Helm
installs the operator into a namespace of its own, the four stages run with
real load through the router, and every stage must reach its outcome. About
70-90 s on a quiet machine.
"""

from __future__ import annotations

import time
import uuid

import pytest
from modeldeploy_devcluster.pytest_plugin import require_tool

from demo import infra, models, run

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.timeout(420)
def test_demo_scenario_reaches_every_outcome(cluster, tmp_path):
    require_tool("helm")
    suffix = uuid.uuid4().hex[:5]
    on = infra.Infra(cluster, None, f"demo-{suffix}", release=f"demo{suffix}",
                     operator_ns=f"demo-system-{suffix}")  # fmt: skip
    versions = models.train()
    bundles = models.bundle_all(versions, tmp_path / "bundles")
    done = None
    try:
        done = run.execute(on, versions, bundles, tmp_path, time.monotonic())
    finally:
        if done is None or run.missed(done):
            print(on.operator_log()[-5000:], on.pod_logs(on.namespace, restarted_only=True))
        on.close()
    assert run.missed(done) == [], [o for o in done.outcomes if not o.ok]
    # Every stage, then the users' verdict: no request failed across all of them.
    assert [o.stage for o in done.outcomes] == [s.label for s in run.scenario.plan()] + ["users"]
    served = run.timeline.served_between(done.load.snapshot(), 0, 1e9)
    assert served["2.0.0"] > 0 and served["4.0.0"] == 0 and served["5.0.0"] == 0
    assert (tmp_path / "rollout.png").stat().st_size > 10_000
