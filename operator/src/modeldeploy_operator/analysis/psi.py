"""Population stability index between two discrete distributions.

Used for prediction drift: the candidate's predicted-class counts against the
stable revision's over the same interval (both from Prometheus counters). A
pure function so that the thresholds users set can be checked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# A bin empty on one side would make the log infinite; a small floor keeps the
# index finite while still weighing a vanished or new class heavily.
EPSILON = 1e-4


def psi(expected: Mapping[str, float], actual: Mapping[str, float]) -> float | None:
    """PSI of `actual` against `expected` (counts per bin); None when either is empty.

    sum over bins of (a - e) * ln(a / e), with a and e the shares of each bin.
    0 means identical; above ~0.2 is usually read as a significant shift.
    """
    e_total = sum(v for v in expected.values() if v > 0)
    a_total = sum(v for v in actual.values() if v > 0)
    if e_total <= 0 or a_total <= 0 or math.isnan(e_total) or math.isnan(a_total):
        return None
    total = 0.0
    for key in set(expected) | set(actual):
        e = max(expected.get(key, 0.0), 0.0) / e_total
        a = max(actual.get(key, 0.0), 0.0) / a_total
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def bins_from_cumulative(buckets: Mapping[float, float]) -> dict[str, float]:
    """Per-bin counts from a Prometheus histogram's cumulative `le` buckets."""
    out: dict[str, float] = {}
    previous = 0.0
    for le in sorted(buckets):
        count = buckets[le]
        out[f"le={le:g}"] = max(count - previous, 0.0)
        previous = count
    return out
