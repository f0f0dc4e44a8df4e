"""Opt-in prediction log: one JSON line per request, written off the request path.

Requests hand a record to a bounded queue with ``put_nowait``; a daemon thread
serialises and writes. When the writer falls behind (a slow disk, a blocked
stdout pipe) records are dropped and counted instead of making clients wait.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

import orjson

_STOP = object()
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


class PredictionLog:
    def __init__(
        self,
        target: str,
        capacity: int = 10000,
        on_drop: Callable[[], None] | None = None,
        stream: IO[bytes] | None = None,  # tests inject a stuck stream
    ):
        self.target = target
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._on_drop = on_drop
        self.dropped = 0
        self._thread = threading.Thread(target=self._write_loop, name="prediction-log", daemon=True)
        if stream is None:
            to_stdout = target in ("-", "stdout")
            stream = sys.stdout.buffer if to_stdout else open(target, "ab")  # noqa: SIM115
        self._stream = stream
        self._thread.start()

    def write(self, record: dict[str, Any]) -> None:
        """Never blocks: a full buffer drops the record and counts it."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is buffered (bounded by ``timeout``) and close the file."""
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)
        if self.target not in ("-", "stdout"):
            self._stream.close()

    def _write_loop(self) -> None:
        stream = self._stream
        while True:
            record = self._queue.get()
            if record is _STOP:
                stream.flush()
                return
            try:
                stream.write(orjson.dumps(record, option=_OPTIONS, default=str))
                if self._queue.empty():
                    stream.flush()
            except (OSError, ValueError, TypeError):  # a closed pipe must not kill serving
                self.dropped += 1
