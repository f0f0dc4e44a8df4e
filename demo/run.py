"""The demo's driver: cluster, operator, models, load, the five stages, report.

Every stage polls the ModelDeployment once a second, prints a timeline row
when something changed, and ends when the status reaches its expected
outcome (or a different final one, or the stage's timeout). Whatever happens,
the load generator, the forward and the cluster are stopped (SIGTERM and
Ctrl-C included); the exit code is non-zero when any stage missed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeldeploy_devcluster.waiting import wait_for
from modeldeploy_operator import plugin

from demo import models, plot, scenario, timeline
from demo import store as bundle_store
from demo.infra import Infra
from demo.load import Load
from demo.store import Store

FINAL = {"Succeeded", "RolledBack", "Failed"}


@dataclass
class Run:
    infra: Infra
    out: Path
    t0: float = field(default_factory=time.monotonic)
    start: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    samples: list[timeline.Sample] = field(default_factory=list)
    points: dict[tuple[float, str], timeline.Point] = field(default_factory=dict)
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    outcomes: list[timeline.Outcome] = field(default_factory=list)
    load: Load | None = None
    seen_events: set[str] = field(default_factory=set)
    store: Store = field(default_factory=Store)

    def manifest(self, stage: scenario.Stage, uris: dict[str, str]) -> dict[str, Any]:
        return scenario.manifest(
            stage.version, uris[stage.version], stage.strategy, self.store.secret_name
        )

    def now(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        print(f"==> [{self.now():5.0f}s] {text}", flush=True)

    def watch(
        self, stage: scenario.Stage, done: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """Poll status until `done` or a final phase after the rollout started; print rows."""
        began = self.now()
        prev: timeline.Sample | None = None
        status: dict[str, Any] = {}
        while self.now() - began < stage.timeout:
            status = self.infra.status(models.NAME)
            served, failed = self.load.since_last() if self.load else ({}, 0)
            events = self.infra.event_reasons(models.NAME, self.seen_events)
            s = timeline.sample_from(self.now(), stage.label, status, self.start, served,
                                     failed, events)  # fmt: skip
            self.samples.append(s)
            for p in timeline.measurement_points(status, self.start):
                self.points[(p.t, p.metric)] = p
            if timeline.worth_printing(prev, s):
                print(timeline.render_row(s), flush=True)
                prev = s
            if done(status):
                if why := timeline.degraded_message(status):
                    print(f"{'':8}-> {status.get('phase')}: {why}", flush=True)
                break
            time.sleep(1.0)
        self.spans.append((stage.label, began, self.now()))
        return status


def _is(version: str, phases: set[str]) -> Callable[[dict[str, Any]], bool]:
    def check(st: dict[str, Any]) -> bool:
        touched = version in (
            (st.get("stable") or {}).get("version"), (st.get("candidate") or {}).get("version"),
        )  # fmt: skip
        return touched and st.get("phase") in phases

    return check


def run_stages(run: Run, uris: dict[str, str]) -> None:
    plan = scenario.plan()
    first = plan[0]
    run.say(f"apply {models.NAME} {first.version} (first revision: straight to stable)")
    run.infra.apply(run.manifest(first, uris))
    began = run.now()
    st = run.watch(first, _is(first.version, FINAL))
    run.outcomes.append(timeline.judge_stable(first.label, st, first.version, run.now() - began))
    if not run.outcomes[-1].ok:
        return
    wait_for(lambda: run.infra.ready_endpoints(models.NAME) > 0, 60, message="router ready")
    with run.infra.cluster.forward(models.NAME, run.infra.namespace, 8080) as url:
        rate = scenario.LOAD_RATE
        run.say(f"steady load: {rate:g} requests/s through the router Service (forward {url})")
        with Load(url, models.traffic_rows(), rate=rate, t0=run.t0) as run.load:
            stable = first.version
            for stage in plan[1:]:
                outcome = one_stage(run, stage, uris, stable)
                run.outcomes.append(outcome)
                if not outcome.ok:
                    return
                if stage.expect == "promoted":
                    stable = stage.version
            run.outcomes.append(timeline.judge_users(run.load.snapshot(), run.now()))


def one_stage(
    run: Run, stage: scenario.Stage, uris: dict[str, str], stable: str
) -> timeline.Outcome:
    kind = stage.strategy["type"].lower()
    run.say(f"apply {stage.version} by {kind}: expected {stage.expect}"
            + (f" on {stage.metric}" if stage.metric else ""))  # fmt: skip
    began = run.now()
    run.infra.apply(run.manifest(stage, uris))
    st = run.watch(stage, _is(stage.version, FINAL))
    ended = run.now()
    if stage.expect == "promoted":
        weights = {s.weight for s in run.samples if s.stage == stage.label}
        steps = [s["weight"] for s in stage.strategy["canary"]["steps"]]
        return timeline.judge_promoted(stage.label, st, stage.version, steps, weights,
                                       ended - began)  # fmt: skip
    leaked = None
    if kind == "shadow" or "validation" in stage.strategy:  # the candidate answers no user
        leaked = timeline.served_between(run.load.snapshot(), began, ended)
    return timeline.judge_rolled_back(stage.label, st, stage.metric, stable, ended - began,
                                      leaked, stage.version)  # fmt: skip


def report(run: Run, versions: list[models.Version]) -> None:
    print()
    print(timeline.summary_table(run.outcomes))
    png = plot.write_png(run.samples, sorted(run.points.values(), key=lambda p: p.t), run.spans,
                         run.out / "rollout.png")  # fmt: skip
    answers = run.load.snapshot() if run.load else []
    served = timeline.served_between(answers, 0, run.now() + 1)
    print(f"\nusers' answers by version: {dict(sorted(served.items()))}, "
          f"failures: {sum(1 for _, c, _ in answers if c != 200)}")  # fmt: skip
    print("held-out accuracy: " + ", ".join(f"{v.version} {v.accuracy:.2f}" for v in versions))
    print(f"\n$ kubectl modeldeploy history {models.NAME}")
    print(plugin.render_history(run.infra.get(models.NAME)))
    print(f"\nchart: {png}")


NEXT = """where to look next (keep the cluster with DEMO_KEEP=1):
  kubectl get md -A                      model, stable, candidate, weight, phase
  kubectl modeldeploy -n {ns} status iris   and `history iris`: the rollout's record
  kubectl describe md iris -n {ns}         conditions (Degraded names metric, value, threshold)
  docs/grafana/modeldeploy.json          the Grafana dashboard (import it)
  modeldeploy-devcluster logs POD -n NS  predictor / router / operator logs"""


def execute(
    infra: Infra, versions: list[models.Version], bundles: dict[str, Path], out: Path, t0: float
) -> Run:
    """Operator from the chart, then every stage, then the report (also the cluster test)."""
    c = infra.cluster
    say = Run(infra, out, t0=t0).say
    say(f"cluster ready: API {c.server}, Prometheus {c.prometheus_url}")
    say(f"helm install: CRD + operator (chart's ServiceAccount), watching {infra.namespace}")
    infra.install_operator()
    say("operator Available")
    store = Store.from_env()
    if store.remote:
        say(f"bundles to the S3 store: s3://{bundle_store.BUCKET}/ (keys in a Secret)")
        store.create_secret(infra.api(), infra.namespace)
    uris = store.publish(bundles)
    # Wall clock of t0, so the operator's measurement times line up with our samples.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - t0)
    run = Run(infra, out, t0=t0, start=start, store=store)
    print(timeline.HEADER)
    try:
        run_stages(run, uris)
    finally:
        if run.load:
            run.load.__exit__()
    report(run, versions)
    return run


def missed(run: Run | None) -> list[str]:
    """Stages that missed their outcome or were never reached."""
    if run is None:
        return ["setup"]
    done = [o.stage for o in run.outcomes]
    return [o.stage for o in run.outcomes if not o.ok] + [
        s.label for s in scenario.plan() if s.label not in done
    ]


def main(out: Path, current: bool, keep: bool = False, namespace: str = "modeldeploy-demo") -> int:
    # SIGTERM (make killed, CI timeout) unwinds like Ctrl-C so cleanup always runs; Ctrl-C
    # too, even when started in the background (where the shell makes SIGINT ignored).
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    step = lambda text: print(f"==> [{time.monotonic() - t0:5.0f}s] {text}", flush=True)  # noqa: E731
    step("training v1..v4 on scikit-learn's iris data set and bundling them")
    versions = models.train()
    for v in versions:
        print(f"      {v.version}: {v.story} (held-out accuracy {v.accuracy:.2f})")
    bundles = models.bundle_all(versions, out / "bundles")
    step("using the cluster of KUBECONFIG" if current else "starting the local cluster")
    infra = Infra.start(namespace, current)
    run: Run | None = None
    try:
        run = execute(infra, versions, bundles, out, t0)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        if missed(run):
            with contextlib.suppress(Exception):  # diagnostics must never hide the cleanup
                print("operator log (tail):\n" + infra.operator_log()[-3000:], file=sys.stderr)
                print(infra.pod_logs(namespace, restarted_only=True), file=sys.stderr)
        step("stopping the demo's load" if keep else "stopping everything the demo started")
        print(infra.close(keep))
    print(NEXT.format(ns=namespace))
    if failed := missed(run):
        print(f"DEMO FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    step(f"demo OK in {time.monotonic() - t0:.0f}s")
    return 0
