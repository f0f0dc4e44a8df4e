"""What users saw: figures from the answers of the steady load (demo.load.Load).

Answers are (seconds since the load started, HTTP status or -1 for a
connection error, model version).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

Answer = tuple[float, int, str]

# Requests per second through the router; the default suits a 2-core machine
# shared with the cluster, the operator and the pods themselves.
RATE = float(os.environ.get("MODELDEPLOY_CHAOS_RATE", "50"))


def failed(answers: Sequence[Answer]) -> int:
    """Requests that were not answered 200 (non-2xx or connection errors)."""
    return sum(1 for _, code, _ in answers if code != 200)


def failure_window(answers: Sequence[Answer]) -> float:
    """Seconds from the first to the last failed request (0 when none failed)."""
    times = [t for t, code, _ in answers if code != 200]
    return round(max(times) - min(times), 2) if times else 0.0


def last_answer_of(answers: Sequence[Answer], version: str) -> float | None:
    """When a request last got `version` (seconds since the load started)."""
    times = [t for t, code, v in answers if code == 200 and v == version]
    return max(times) if times else None


def served(answers: Sequence[Answer], version: str, after: float = 0.0) -> int:
    return sum(1 for t, code, v in answers if code == 200 and v == version and t >= after)


def last_failure(answers: Sequence[Answer]) -> float:
    """When a request last failed (0 when none did)."""
    return max((t for t, code, _ in answers if code != 200), default=0.0)
