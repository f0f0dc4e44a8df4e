"""The demo's PNG: canary weight, error rate, drift and shadow agreement over time.

Drawn with matplotlib's Agg backend (no display needed) from the samples and
analysis points the run collected. Stages are shaded and labelled; each
metric panel shows its threshold, and failed measurements are crossed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from demo.timeline import Point, Sample

COLORS = ["#e8f0fe", "#e6f4ea", "#fce8e6", "#fef7e0"]
PANELS = (  # metric, y label, colour, log scale
    ("error-rate", "error rate\n(5xx share)", "#d93025", False),
    ("feature-drift", "feature drift\n(max PSI)", "#e37400", True),
    ("shadow-agreement", "shadow\nagreement", "#9334e6", False),
)


def threshold(text: str) -> float | None:
    """The number in a threshold such as '<= 0.5' or '>= 0.9'."""
    found = re.search(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)
    return float(found.group()) if found else None


def write_png(
    samples: Sequence[Sample],
    points: Sequence[Point],
    stages: Sequence[tuple[str, float, float]],  # (label, start s, end s)
    path: Path,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(11, 9), sharex=True,
                             gridspec_kw={"height_ratios": [1.3, 1, 1, 1]})  # fmt: skip
    weight = axes[0]
    t = [s.t for s in samples]
    weight.step(t, [s.weight for s in samples], where="post", color="#1a73e8",
                label="users' traffic on the candidate (%)")  # fmt: skip
    shadowed = [100 if s.shadow else 0 for s in samples]
    weight.fill_between(t, 0, shadowed, step="post", color="#9334e6", alpha=0.15,
                        label="shadow: mirrored copies only")  # fmt: skip
    weight.set_ylim(0, 112)
    weight.set_ylabel("canary weight %")
    errors = axes[1]
    failed = [s.failed / (sum(s.served.values()) + s.failed or 1) for s in samples]
    errors.plot(t, failed, color="#5f6368", lw=1, label="failed answers seen by the load (share)")
    for ax, (metric, label, color, log) in zip(axes[1:], PANELS, strict=True):
        _metric(ax, points, stages, metric, color)
        ax.set_ylabel(label)
        if log:
            ax.set_yscale("symlog", linthresh=0.1)
            ax.set_ylim(0, max(1.0, ax.get_ylim()[1]) * 2)  # room above the failed crosses
        else:
            top = 1.05 if metric == "shadow-agreement" else max(0.1, ax.get_ylim()[1])
            ax.set_ylim(-0.02, top)
    axes[-1].set_xlabel("seconds since the demo started")
    for ax in axes:
        for i, (label, t0, t1) in enumerate(stages):
            ax.axvspan(t0, t1, color=COLORS[i % len(COLORS)], zorder=0)
            if ax is weight:
                ax.text((t0 + t1) / 2, 110, label, ha="center", va="top", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="center left" if ax is weight else "upper left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("modeldeploy demo: v2 canary promoted, v3 canary rolled back on drift, "
                 "v4 shadow rejected on agreement", fontsize=11)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _metric(ax, points, stages, metric: str, color: str) -> None:
    """One line per stage (a new candidate starts afresh), threshold dashed, fails crossed."""
    mine = [p for p in points if p.metric == metric and p.value is not None]
    labelled = False
    for _, t0, t1 in stages:
        part = [p for p in mine if t0 <= p.t < t1]
        if part:
            ax.plot([p.t for p in part], [p.value for p in part], "o-", ms=3, color=color,
                    label=None if labelled else f"{metric} (analysis runs)")  # fmt: skip
            labelled = True
    limits = {threshold(p.threshold) for p in mine} - {None}
    for i, limit in enumerate(sorted(limits)):
        ax.axhline(limit, color=color, ls="--", lw=1, label="threshold" if i == 0 else None)
    failed = [p for p in mine if p.verdict == "Fail"]
    if failed:
        ax.plot([p.t for p in failed], [p.value for p in failed], "x", ms=9, color="black",
                label="failed run")  # fmt: skip
