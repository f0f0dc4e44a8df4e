"""Defaults the predictor and the router share, defined once.

The operator's CRD defaults (spec.predictor.batching) are the same numbers;
tests/operator/test_spec_defaults.py holds the two packages to them.
"""

from __future__ import annotations

MiB = 1024 * 1024
# Largest request body accepted (413 above), by the router and the predictor alike:
# a proxy that accepted more than its backend would only forward refusals.
MAX_BODY_BYTES = 16 * MiB
MAX_BATCH_SIZE = 32  # rows merged into one predict call
MAX_WAIT_MS = 5.0  # longest a request waits for others to join its batch
