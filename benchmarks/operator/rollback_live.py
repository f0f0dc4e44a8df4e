"""Detection-to-rollback on the real stack: predictor and router pods, real Prometheus.

The local cluster, the operator installed from the Helm chart, a stable iris
model and a canary that fails on "poisoned" rows (`poison.py`); users' load
goes through the router Service. Once the canary has passed one analysis
run, and after a random part of the interval, the load generator starts
sending a share of poisoned rows. Three
moments are timed per run:

- visible: the first time the operator's own error-rate query (the same
  PromQL, polled every 100 ms) shows the breach in Prometheus;
- status: `status.traffic` names stable only (what the router applies);
- last canary answer: the last user request the canary answered.

The target (issue 5): traffic fully back on stable within one analysis
interval + one scrape interval + 2 s of the breach becoming visible.

    python -m benchmarks.operator.rollback_live --runs 5 [--interval 6s]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from modeldeploy_devcluster.waiting import wait_for
from modeldeploy_operator import spec
from modeldeploy_operator.analysis import runner
from modeldeploy_predictor import bundle

from benchmarks.operator import poison
from demo import models, scenario
from demo.infra import REPO, Infra
from demo.load import Load

SCRAPE_S = 2.0  # the local cluster's scrape interval (Infra.start)
ERROR_RATE = {"name": "error-rate", "max": 0.05}


class Rows(Sequence):
    """Users' rows; a share of them poisoned once `poisoned` is set."""

    def __init__(self, rows: list[dict[str, float]], share: float) -> None:
        self.rows, self.every, self.poisoned = rows, max(1, round(1 / share)), False

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, float]:  # type: ignore[override]
        row = self.rows[i]
        if self.poisoned and i % self.every == 0:
            row = {**row, models.FEATURES[poison.POISON_COLUMN]: poison.POISON_VALUE}
        return row


@dataclass(frozen=True)
class Timing:
    poison_to_visible: float
    visible_to_status: float
    visible_to_last_canary: float


def strategy(interval: str) -> dict[str, Any]:
    return {
        "type": "Canary",
        "canary": {"steps": [{"weight": 50, "pause": "1h"}]},
        "analysis": {
            "interval": interval,
            "initialDelay": "4s",
            "minRequests": 10,
            "failureLimit": 1,
            "inconclusiveLimit": 20,
            "metrics": [ERROR_RATE],
        },
    }


def manifest(version: str, uri: Path, interval: str) -> dict[str, Any]:
    body = scenario.manifest(version, str(uri), strategy(interval))
    # The candidate's pickle names benchmarks.operator.poison.
    body["spec"]["predictor"]["env"].append({"name": "PYTHONPATH", "value": str(REPO)})
    return body


def passed_once(status: dict[str, Any], version: str) -> bool:
    if (status.get("candidate") or {}).get("version") != version:
        return False
    measurements = (status.get("analysis") or {}).get("measurements") or []
    return any(m.get("verdict") == "Pass" for m in measurements)


def breach_query(infra: Infra) -> str:
    """The error-rate PromQL the operator runs for the current candidate."""
    body = infra.get(models.NAME)
    md = spec.parse(body)
    metric = next(m for m in md.strategy.analysis.metrics if m.name == ERROR_RATE["name"])
    return runner.query_for(metric, runner.target(md, body["status"]))


def prometheus_value(url: str, query: str) -> float | None:
    r = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=2)
    result = r.json().get("data", {}).get("result") or []
    return float(result[0]["value"][1]) if result else None


def one_run(infra: Infra, load: Load, rows: Rows, version: str, uri: Path, interval: str) -> Timing:
    interval_s = spec.parse_duration(interval)
    rows.poisoned = False
    infra.apply(manifest(version, uri, interval))
    wait_for(lambda: passed_once(infra.status(models.NAME), version), 120,
             message=f"{version}: one passing analysis on 50% canary")  # fmt: skip
    query = breach_query(infra)
    prom = infra.cluster.prometheus_url
    # Right after a passing run the next one is a whole interval away: start the
    # failures at a random point of the interval, as a real breach would.
    time.sleep(random.uniform(0, interval_s))
    rows.poisoned = True
    poisoned_at = time.monotonic() - load.t0

    def visible() -> bool:
        value = prometheus_value(prom, query)
        return value is not None and value > ERROR_RATE["max"]

    wait_for(visible, 60, interval=0.1, message="the breach in Prometheus")
    visible_at = time.monotonic() - load.t0

    def back_on_stable() -> bool:
        tracks = (infra.status(models.NAME).get("traffic") or {}).get("tracks") or {}
        return set(tracks) == {"stable"}

    wait_for(back_on_stable, 60, interval=0.05, message="status.traffic on stable only")
    status_at = time.monotonic() - load.t0
    rows.poisoned = False
    time.sleep(3)  # let in-flight requests and the router's 1 s contract play out
    last_canary = max(
        (t for t, code, v in load.snapshot() if v == version or (code != 200 and t >= poisoned_at)),
        default=visible_at,
    )
    return Timing(visible_at - poisoned_at, status_at - visible_at, last_canary - visible_at)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--interval", default="6s", help="analysis interval (default 6s)")
    p.add_argument("--poison-share", type=float, default=0.3, help="share of poisoned rows")
    p.add_argument("--tick", type=float, default=1.0, help="operator --tick (chart value)")
    args = p.parse_args(argv)
    interval_s = spec.parse_duration(args.interval)
    bound = interval_s + SCRAPE_S + 2
    versions = models.train()
    out = Path(tempfile.mkdtemp(prefix="md-rollback-live-"))
    stable = models.bundle_all(versions[:1], out)[versions[0].version]
    canary = poison.FailsOnPoison.around(versions[1].estimator)
    infra = Infra.start("bench-rollback-live", current=False)
    timings: list[Timing] = []
    try:
        infra.install_operator(tick=args.tick)
        infra.apply(manifest(versions[0].version, stable, args.interval))
        wait_for(lambda: infra.status(models.NAME).get("phase") == "Succeeded", 120,
                 message="v1 stable")  # fmt: skip
        wait_for(lambda: infra.ready_endpoints(models.NAME) > 0, 60, message="router ready")
        rows = Rows(models.traffic_rows(), args.poison_share)
        with (
            infra.cluster.forward(models.NAME, infra.namespace, 8080) as url,
            Load(url, rows, rate=scenario.LOAD_RATE) as load,
        ):
            for run in range(args.runs):
                version = f"2.0.{run}"
                uri = bundle.build_bundle(
                    canary, versions[1].reference, models.NAME, version,
                    out / f"{models.NAME}-{version}", feature_names=models.FEATURES,
                )  # fmt: skip
                t = one_run(infra, load, rows, version, uri, args.interval)
                timings.append(t)
                print(f"run {run}: poison -> visible {t.poison_to_visible:.2f} s; visible -> "
                      f"status {t.visible_to_status:.2f} s, -> last canary answer "
                      f"{t.visible_to_last_canary:.2f} s", flush=True)  # fmt: skip
    finally:
        infra.close()
    back = [t.visible_to_last_canary for t in timings]
    status = [t.visible_to_status for t in timings]
    print(f"interval {args.interval}, scrape {SCRAPE_S:g}s, tick {args.tick:g}s, "
          f"{len(timings)} runs: visible -> status median {statistics.median(status):.2f} s, "
          f"max {max(status):.2f} s; visible -> last canary answer median "
          f"{statistics.median(back):.2f} s, max {max(back):.2f} s "
          f"(bound: interval + scrape + 2 s = {bound:.1f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
