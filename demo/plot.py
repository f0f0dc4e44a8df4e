"""The demo's PNG: canary weight, error rate and drift/agreement over time.

Drawn with matplotlib's Agg backend (no display needed) from the samples and
analysis points the run collected; stage boundaries are shaded and labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from demo.timeline import Point, Sample

COLORS = ["#e8f0fe", "#e6f4ea", "#fce8e6", "#fef7e0"]


def write_png(
    samples: Sequence[Sample],
    points: Sequence[Point],
    stages: Sequence[tuple[str, float, float]],  # (label, start s, end s)
    path: Path,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (weight, errors, drift) = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True)
    t = [s.t for s in samples]
    weight.step(t, [s.weight for s in samples], where="post", color="#1a73e8",
                label="canary weight (%)")  # fmt: skip
    weight.fill_between(t, 0, [100 if s.shadow else 0 for s in samples], step="post",
                        color="#9334e6", alpha=0.15, label="shadow (mirrored only)")  # fmt: skip
    weight.set_ylim(0, 105)
    weight.set_ylabel("users' traffic\non candidate %")
    served = [sum(s.served.values()) + s.failed for s in samples]
    failed = [s.failed / n if n else 0.0 for s, n in zip(samples, served, strict=True)]
    errors.plot(t, failed, color="#5f6368", lw=1, label="client-side failures (share)")
    _points(errors, points, "error-rate", "#d93025", "error-rate (canary, analysis)")
    errors.set_ylabel("error rate")
    _points(drift, points, "feature-drift", "#e37400", "feature-drift PSI (candidate)")
    _points(drift, points, "shadow-agreement", "#9334e6", "shadow-agreement")
    drift.set_ylabel("PSI / agreement")
    drift.set_yscale("symlog", linthresh=1)
    drift.set_xlabel("seconds since the demo started")
    for ax in (weight, errors, drift):
        for i, (label, t0, t1) in enumerate(stages):
            ax.axvspan(t0, t1, color=COLORS[i % len(COLORS)], zorder=0)
            if ax is weight:
                ax.text((t0 + t1) / 2, 102, label, ha="center", va="top", fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("modeldeploy demo: v1 -> v2 canary (promoted) -> v3 canary (rolled back) "
                 "-> v4 shadow (rejected)", fontsize=11)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _points(ax, points: Sequence[Point], metric: str, color: str, label: str) -> None:
    mine = [p for p in points if p.metric == metric and p.value is not None]
    if not mine:
        return
    ax.plot([p.t for p in mine], [p.value for p in mine], "o-", ms=3, color=color, label=label)
    failed = [p for p in mine if p.verdict == "Fail"]
    if failed:
        ax.plot([p.t for p in failed], [p.value for p in failed], "x", ms=9, color="black",
                label=f"{metric}: Fail")  # fmt: skip
