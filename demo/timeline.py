"""Pure view of a rollout over time: samples, timeline rows, outcomes, summary.

The runner feeds it what it observed (ModelDeployment status, Events, the
load generator's answers); nothing here does I/O, so the rendering and the
judging of each stage are unit-tested on plain dicts.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# Metrics shown in the timeline, in this order, with their short names.
SHOWN = {
    "error-rate": "err",
    "feature-drift": "drift",
    "prediction-drift": "pdrift",
    "latency-p99": "p99",
    "shadow-agreement": "agree",
}


@dataclass(frozen=True)
class Point:
    """One analysis measurement, at seconds since the demo started."""

    t: float
    metric: str
    value: float | None
    threshold: str
    verdict: str


@dataclass(frozen=True)
class Sample:
    """What the demo saw at one moment."""

    t: float
    stage: str
    phase: str
    stable: str
    candidate: str
    weight: int  # percent of users' traffic on the candidate (canary)
    shadow: bool  # candidate receives mirrored traffic only
    served: Mapping[str, int]  # answers per model version since the previous sample
    failed: int  # client-side failures (non-200 or no answer) since the previous sample
    metrics: Mapping[str, Point] = field(default_factory=dict)  # latest per metric
    events: tuple[str, ...] = ()  # Event reasons new since the previous sample


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def measurement_points(status: Mapping[str, Any], start: dt.datetime) -> list[Point]:
    """The analysis measurements in a status, as points relative to `start`."""
    points = []
    for m in (status.get("analysis") or {}).get("measurements") or []:
        if "time" not in m:
            continue
        t = (parse_time(m["time"]) - start).total_seconds()
        value = m.get("value")
        points.append(
            Point(t, m["metric"], None if value is None else float(value),
                  str(m.get("threshold", "")), str(m.get("verdict", "")))
        )  # fmt: skip
    return points


def latest_by_metric(points: Iterable[Point]) -> dict[str, Point]:
    latest: dict[str, Point] = {}
    for p in sorted(points, key=lambda p: p.t):
        latest[p.metric] = p
    return latest


def sample_from(
    t: float,
    stage: str,
    status: Mapping[str, Any],
    start: dt.datetime,
    served: Mapping[str, int],
    failed: int,
    events: Sequence[str] = (),
) -> Sample:
    """A Sample from a ModelDeployment status and the load seen since the last one."""
    phase = status.get("phase") or "-"
    traffic = status.get("traffic") or {}
    tracks = traffic.get("tracks") or {}
    return Sample(
        t=t,
        stage=stage,
        phase=phase,
        stable=(status.get("stable") or {}).get("version", "-"),
        candidate=(status.get("candidate") or {}).get("version", "-"),
        weight=int(status.get("canaryWeight") or traffic.get("canaryWeight") or 0),
        shadow="shadow" in tracks or phase == "Shadow",
        served=dict(served),
        failed=failed,
        metrics=latest_by_metric(measurement_points(status, start)),
        events=tuple(events),
    )


def _fmt_value(p: Point) -> str:
    value = "n/a" if p.value is None else f"{p.value:.3g}"
    mark = {"Pass": "", "Fail": "!", "Inconclusive": "?"}.get(p.verdict, "")
    return f"{SHOWN.get(p.metric, p.metric)}={value}{mark}"


HEADER = (
    f"{'time':>6}  {'stage':<10} {'phase':<11} {'traffic':<18} {'answers (1 s)':<18} "
    "analysis / events"
)


def render_row(s: Sample) -> str:
    """One compact timeline line: time, stage, phase, weights, answers, metrics, events."""
    if s.shadow:
        traffic = f"{s.stable}:100 +shadow"
    elif s.weight and s.candidate != "-":
        traffic = f"{s.stable}:{100 - s.weight} {s.candidate}:{s.weight}"
    else:
        traffic = f"{s.stable}:100"
    served = " ".join(f"{v}:{n}" for v, n in sorted(s.served.items())) or "-"
    if s.failed:
        served += f" fail:{s.failed}"
    metrics = " ".join(_fmt_value(s.metrics[m]) for m in SHOWN if m in s.metrics)
    events = " ".join(f"[{e}]" for e in s.events)
    tail = " ".join(x for x in (metrics, events) if x)
    return f"{s.t:5.0f}s  {s.stage:<10} {s.phase:<11} {traffic:<18} {served:<18} {tail}".rstrip()


def worth_printing(prev: Sample | None, cur: Sample, every: float = 5.0) -> bool:
    """A row when something changed (phase, weight, metrics, events) or every `every` s."""
    if prev is None or cur.events:
        return True
    if (prev.stage, prev.phase, prev.weight, prev.shadow) != (
        cur.stage, cur.phase, cur.weight, cur.shadow,
    ):  # fmt: skip
        return True
    if {k: (p.t, p.value) for k, p in prev.metrics.items()} != {
        k: (p.t, p.value) for k, p in cur.metrics.items()
    }:
        return True
    return cur.t - prev.t >= every


@dataclass(frozen=True)
class Outcome:
    """How one stage ended, against what it had to do."""

    stage: str
    expected: str
    ok: bool
    seconds: float
    detail: str


def judge_stable(stage: str, status: Mapping[str, Any], version: str, seconds: float) -> Outcome:
    """v1: the first revision goes straight to stable."""
    phase = status.get("phase")
    stable = (status.get("stable") or {}).get("version")
    ok = phase == "Succeeded" and stable == version
    return Outcome(stage, f"{version} stable", ok, seconds, f"phase {phase}, stable {stable}")


def judge_users(answers: Sequence[tuple[float, int, str]], seconds: float) -> Outcome:
    """Across every stage: no user request failed (non-200 or no answer at all)."""
    failed = sum(1 for _, code, _ in answers if code != 200)
    detail = f"{failed} failed of {len(answers)} requests"
    return Outcome("users", "no failed request", failed == 0 and bool(answers), seconds, detail)


def judge_promoted(
    stage: str,
    status: Mapping[str, Any],
    version: str,
    steps: Sequence[int],
    weights_seen: Iterable[int],
    seconds: float,
) -> Outcome:
    """A canary promoted after passing through every step's weight."""
    phase = status.get("phase")
    stable = (status.get("stable") or {}).get("version")
    missed = sorted(set(steps) - set(weights_seen))
    ok = phase == "Succeeded" and stable == version and not missed
    detail = f"phase {phase}, stable {stable}, steps {'/'.join(map(str, steps))}%"
    if missed:
        detail += f", never at {missed}"
    return Outcome(stage, f"{version} promoted", ok, seconds, detail)


def degraded_message(status: Mapping[str, Any]) -> str:
    """The Degraded condition's message when it is True (why it rolled back), else ''."""
    for c in status.get("conditions") or []:
        if c.get("type") == "Degraded" and c.get("status") == "True":
            return str(c.get("message", ""))
    return ""


def judge_rolled_back(
    stage: str,
    status: Mapping[str, Any],
    metric: str,
    stable_version: str,
    seconds: float,
    leaked: Mapping[str, int] | None = None,
    candidate: str = "",
) -> Outcome:
    """Rolled back by `metric`, stable untouched; with `leaked`, no user saw `candidate`."""
    phase = status.get("phase")
    stable = (status.get("stable") or {}).get("version")
    failing = [
        p for p in measurement_points(status, EPOCH)
        if p.metric == metric and p.verdict == "Fail"
    ]  # fmt: skip
    reason = degraded_message(status)
    ok = phase == "RolledBack" and stable == stable_version and metric in reason
    detail = f"phase {phase}: {reason}" if reason else f"phase {phase}"
    if failing and failing[-1].value is not None:
        last = failing[-1]
        detail = f"phase {phase}: {metric} = {last.value:.3g} (threshold {last.threshold})"
    if leaked is not None:
        seen = leaked.get(candidate, 0)
        ok = ok and seen == 0 and sum(leaked.values()) > 0
        detail += f"; users got {candidate} {seen} times of {sum(leaked.values())}"
    return Outcome(stage, f"rolled back on {metric}", ok, seconds, detail)


def summary_table(outcomes: Sequence[Outcome]) -> str:
    """A fixed-width table: stage, expected, result, seconds, detail."""
    rows = [("stage", "expected", "result", "time", "detail")]
    rows += [
        (o.stage, o.expected, "OK" if o.ok else "MISSED", f"{o.seconds:.0f}s", o.detail)
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, r in enumerate(rows):
        cells = "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
        lines.append(f"{cells}  {r[4]}")
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def served_between(answers: Iterable[tuple[float, int, str]], t0: float, t1: float) -> Counter[str]:
    """Versions of the 200 answers whose request started in [t0, t1)."""
    return Counter(v for t, code, v in answers if t0 <= t < t1 and code == 200)
