"""The demo's pure parts: samples from status, timeline rows, judging, summary, chart."""

from __future__ import annotations

import datetime as dt

import pytest

from demo import plot, scenario, timeline

START = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def status(phase="Canary", weight=25, measurements=(), degraded="", stable="1.0.0", cand="2.0.0"):
    st = {
        "phase": phase,
        "stable": {"version": stable},
        "candidate": {"version": cand},
        "canaryWeight": weight,
        "traffic": {"tracks": {"stable": {}, "canary": {}}, "canaryWeight": weight},
        "analysis": {"measurements": list(measurements)},
        "conditions": [{"type": "Degraded", "status": "True" if degraded else "False",
                        "message": degraded}],
    }  # fmt: skip
    return st


def measurement(metric, value, verdict="Pass", seconds=10, threshold="<= 0.5"):
    time = (START + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return {"metric": metric, "value": value, "threshold": threshold, "verdict": verdict,
            "message": "", "time": time}  # fmt: skip


def test_sample_reads_weights_metrics_and_relative_times():
    st = status(
        measurements=[
            measurement("feature-drift", 0.1, seconds=5),
            measurement("feature-drift", 6.2, "Fail", seconds=9),
            measurement("error-rate", None, "Inconclusive", seconds=9),
        ]
    )
    s = timeline.sample_from(12.0, "v3", st, START, {"1.0.0": 15, "2.0.0": 5}, 1, ["CanaryStep"])
    assert (s.phase, s.weight, s.stable, s.candidate, s.shadow) == ("Canary", 25, "1.0.0",
                                                                     "2.0.0", False)  # fmt: skip
    drift = s.metrics["feature-drift"]
    assert drift.value == 6.2 and drift.t == 9.0 and drift.verdict == "Fail"
    row = timeline.render_row(s)
    assert "1.0.0:75 2.0.0:25" in row and "drift=6.2!" in row and "err=n/a?" in row
    assert "fail:1" in row and "[CanaryStep]" in row


def test_shadow_and_empty_status_render():
    st = status(phase="Shadow", weight=0)
    st["traffic"]["tracks"] = {"stable": {}, "shadow": {}}
    assert "+shadow" in timeline.render_row(timeline.sample_from(1, "v4", st, START, {}, 0))
    empty = timeline.sample_from(0, "v1", {}, START, {}, 0)
    assert empty.phase == "-" and "-:100" in timeline.render_row(empty)


def test_worth_printing_on_change_or_time():
    a = timeline.sample_from(0, "v2", status(), START, {}, 0)
    same = timeline.sample_from(1, "v2", status(), START, {}, 0)
    later = timeline.sample_from(6, "v2", status(), START, {}, 0)
    moved = timeline.sample_from(1, "v2", status(weight=50), START, {}, 0)
    assert timeline.worth_printing(None, a)
    assert not timeline.worth_printing(a, same)
    assert timeline.worth_printing(a, later) and timeline.worth_printing(a, moved)


def test_judge_promoted_needs_every_step():
    st = status(phase="Succeeded", weight=0, stable="2.0.0")
    ok = timeline.judge_promoted("v2", st, "2.0.0", [25, 50, 75], {0, 25, 50, 75}, 30)
    skipped = timeline.judge_promoted("v2", st, "2.0.0", [25, 50, 75], {0, 25, 75}, 30)
    assert ok.ok and not skipped.ok and "never at [50]" in skipped.detail
    assert not timeline.judge_promoted("v2", status(), "2.0.0", [25], {25}, 30).ok


def test_judge_rolled_back_shows_metric_value_threshold_and_leaks():
    st = status(phase="RolledBack", weight=0, stable="2.0.0", cand="3.0.0",
                degraded="feature-drift 5.2 > 0.5",
                measurements=[measurement("feature-drift", 5.2, "Fail")])  # fmt: skip
    o = timeline.judge_rolled_back("v3", st, "feature-drift", "2.0.0", 15)
    assert o.ok and "feature-drift = 5.2 (threshold <= 0.5)" in o.detail
    assert timeline.degraded_message(st) == "feature-drift 5.2 > 0.5"
    assert timeline.degraded_message(status()) == ""
    assert not timeline.judge_rolled_back("v3", st, "error-rate", "2.0.0", 15).ok
    clean = timeline.judge_rolled_back("v4", st, "feature-drift", "2.0.0", 15,
                                       {"2.0.0": 300}, "3.0.0")  # fmt: skip
    leaked = timeline.judge_rolled_back("v4", st, "feature-drift", "2.0.0", 15,
                                        {"2.0.0": 300, "3.0.0": 1}, "3.0.0")  # fmt: skip
    assert clean.ok and not leaked.ok and "users got 3.0.0 1 times of 301" in leaked.detail
    no_load = timeline.judge_rolled_back("v4", st, "feature-drift", "2.0.0", 15, {}, "3.0.0")
    assert not no_load.ok  # no answers at all proves nothing


def test_summary_table_and_served_between():
    table = timeline.summary_table([
        timeline.Outcome("v1", "1.0.0 stable", True, 3.2, "phase Succeeded"),
        timeline.Outcome("v3 canary", "rolled back on feature-drift", False, 15, "phase Canary"),
    ])  # fmt: skip
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["stage", "expected", "result"] and len(lines) == 4
    assert "OK" in lines[2] and "MISSED" in lines[3] and lines[3].endswith("phase Canary")
    answers = [(1.0, 200, "1.0.0"), (2.0, 500, ""), (3.0, 200, "2.0.0"), (9.0, 200, "2.0.0")]
    assert timeline.served_between(answers, 0, 5) == {"1.0.0": 1, "2.0.0": 1}


@pytest.mark.parametrize("text, value", [("<= 0.5", 0.5), (">= 0.9", 0.9), ("<= 1e-3", 1e-3),
                                         ("", None)])  # fmt: skip
def test_threshold_parsing(text, value):
    assert plot.threshold(text) == value


def test_plan_and_manifests_are_consistent():
    stages = scenario.plan()
    assert [s.expect for s in stages] == ["stable", "promoted", "rolled-back", "rolled-back"]
    v2 = scenario.manifest("2.0.0", "/b/2", stages[1].strategy)
    steps = [s["weight"] for s in v2["spec"]["strategy"]["canary"]["steps"]]
    assert steps == list(scenario.CANARY_STEPS) and v2["spec"]["model"]["uri"] == "/b/2"
    metrics = {m["name"] for m in stages[2].strategy["analysis"]["metrics"]}
    assert stages[2].metric in metrics
    assert stages[3].strategy["type"] == "Shadow"


def test_png_is_written(tmp_path):
    st = status(
        measurements=[
            measurement("feature-drift", 0.1, seconds=5),
            measurement("shadow-agreement", 0.0, "Fail", 9, ">= 0.9"),
        ]
    )
    samples = [timeline.sample_from(t, "v2", st, START, {"1.0.0": 3}, 0) for t in range(12)]
    points = timeline.measurement_points(st, START)
    path = plot.write_png(samples, points, [("v2", 0, 12)], tmp_path / "out" / "rollout.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_judge_users_fails_on_any_failed_request():
    answers = [(0.1, 200, "1.0.0"), (0.2, 200, "2.0.0")]
    assert timeline.judge_users(answers, 9).ok
    assert not timeline.judge_users([*answers, (0.3, -1, "")], 9).ok
    assert not timeline.judge_users([*answers, (0.3, 503, "")], 9).ok
    assert not timeline.judge_users([], 9).ok  # no load at all proves nothing
