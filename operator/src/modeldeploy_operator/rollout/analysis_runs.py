"""What one analysis run does to the stage: a pass, a failure or an inconclusive run.

The counters live in `status.analysis`: `failureLimit` failures roll back,
`inconclusiveLimit` inconclusive runs in a row pause (missing data is never
a pass), and a stage needs a pass before it may end. Dry-run metrics are
measured and shown but never counted.
"""

from __future__ import annotations

from modeldeploy_operator.analysis.verdicts import AnalysisResult, Verdict
from modeldeploy_operator.rollout import pauses, timing
from modeldeploy_operator.rollout.tick import Tick

MAX_MEASUREMENTS = 20


def record(t: Tick, result: AnalysisResult) -> bool:
    """Count one analysis run; False when it ended the stage (rollback/pause)."""
    now = timing.timestamp(t.now)
    measured = (*t.analysis.measurements, *(m.to_status(now) for m in result.measurements))
    t.set_analysis(last_run_at=now, measurements=measured[-MAX_MEASUREMENTS:])
    for m in result.dry_run_failures:
        t.emit("Warning", "DryRunMetricFailed", f"dry run, not counted: {m.message}")
    requests = t.analysis.requests + (result.requests or 0)
    analysis_spec = t.md.strategy.analysis
    if not result.counted and not analysis_spec.gating_metrics:
        # Only dry-run metrics: measured and shown, never a pass, failure or pause.
        t.set_analysis(requests=requests)
        return True
    verdict = result.verdict
    if verdict is Verdict.FAIL:
        t.set_analysis(failures=t.analysis.failures + 1, inconclusive=0)
        failed = result.first_failure
        text = failed.message if failed else "analysis failed"
        if t.analysis.failures >= analysis_spec.failure_limit:
            t.rollback("AnalysisFailed", text)
            return False
        t.emit("Warning", "AnalysisFailed", text)
        return True
    if verdict is Verdict.INCONCLUSIVE:
        t.set_analysis(inconclusive=t.analysis.inconclusive + 1)
        unsure = result.first_inconclusive
        text = unsure.message if unsure else "no metrics"
        count = t.analysis.inconclusive
        if count >= analysis_spec.inconclusive_limit:
            t.pause(pauses.PAUSE_INCONCLUSIVE, f"{count} inconclusive runs: {text}")
            return False
        t.emit("Normal", "AnalysisInconclusive", text)
        return True
    t.set_analysis(passes=t.analysis.passes + 1, inconclusive=0, requests=requests)
    return True
