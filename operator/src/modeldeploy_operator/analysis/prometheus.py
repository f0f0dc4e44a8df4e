"""The Prometheus metric provider: the only analysis code that does I/O.

A provider is one call (`run_query`), so the runner can be tested against a
fake and another backend could be added beside this one. An unreachable or
failing backend raises ProviderError (its message reaches the verdict), which
keeps "Prometheus down" apart from a query that returns no data.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import httpx

from modeldeploy_operator import metrics as opmetrics

Sample = tuple[dict[str, str], float]


class ProviderError(Exception):
    """The backend could not answer (unreachable, bad status, bad query)."""


class MetricProvider(Protocol):
    async def run_query(self, query: str) -> list[Sample]: ...


class Prometheus:
    """Instant queries against the Prometheus HTTP API (`/api/v1/query`)."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run_query(self, query: str) -> list[Sample]:
        started = time.perf_counter()
        try:
            response = await self._client.get("/api/v1/query", params={"query": query})
        except httpx.TimeoutException as exc:
            # Its str() is often empty: say what happened, so the status explains
            # why the run was inconclusive (tests/chaos/test_prometheus_faults.py).
            opmetrics.PROMETHEUS_QUERIES.labels(result="unreachable").inc()
            raise ProviderError(
                f"Prometheus at {self.url} timed out ({type(exc).__name__} after {self.timeout:g}s)"
            ) from exc
        except httpx.HTTPError as exc:
            opmetrics.PROMETHEUS_QUERIES.labels(result="unreachable").inc()
            why = str(exc) or type(exc).__name__
            raise ProviderError(f"Prometheus unreachable at {self.url}: {why}") from exc
        finally:
            opmetrics.PROMETHEUS_QUERY_SECONDS.observe(time.perf_counter() - started)
        try:
            payload = response.json()
        except ValueError as exc:
            opmetrics.PROMETHEUS_QUERIES.labels(result="error").inc()
            raise ProviderError(f"Prometheus answered {response.status_code}, not JSON") from exc
        if response.status_code != 200 or payload.get("status") != "success":
            opmetrics.PROMETHEUS_QUERIES.labels(result="error").inc()
            raise ProviderError(
                f"Prometheus query failed ({response.status_code}): "
                f"{payload.get('error', 'unknown error')}"
            )
        opmetrics.PROMETHEUS_QUERIES.labels(result="ok").inc()
        return parse_result(payload.get("data") or {})


def parse_result(data: dict) -> list[Sample]:
    """Samples from a query answer: a vector, or a scalar (no labels)."""
    kind = data.get("resultType")
    result = data.get("result") or []
    if kind == "scalar" and result:
        return [({}, _number(result[1]))]
    if kind == "vector":
        return [(dict(item.get("metric") or {}), _number(item["value"][1])) for item in result]
    return []


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
