"""Wait for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    interval: float = 0.2,
    message: str = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy and return that.

    Exceptions raised by the predicate count as "not yet" (the API object may
    not exist yet); the last one is chained to the TimeoutError for context.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # keep polling; report the last failure on timeout
            last_error = exc
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {message}{detail}"
            ) from (last_error)
        time.sleep(interval)
