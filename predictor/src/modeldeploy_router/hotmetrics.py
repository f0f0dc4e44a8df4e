"""The three series written on every forwarded request, kept as plain numbers.

modeldeploy_router_requests_total, _upstream_duration_seconds and
_overhead_seconds are updated once per request from the event loop, their only
writer. Through prometheus_client each update takes a lock and several checks
(13 Python calls per request, a tenth of the router's); here it is a dict
lookup and three additions. The registry turns them into the same samples at
scrape time, which also runs on the event loop, so no lock is needed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

TRACK_LABELS = ("model", "track", "version", "revision")


class Buckets:
    """One histogram series: per-bucket counts (the last is +Inf) and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * (size + 1)
        self.total = 0.0

    def samples(self, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
        cumulative = 0
        out = []
        for bound, count in zip((*bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            out.append((floatToGoString(bound), cumulative))
        return out


class HotPathMetrics:
    """A prometheus_client collector (register it in a registry)."""

    def __init__(self, latency_buckets: tuple[float, ...], overhead_buckets: tuple[float, ...]):
        self.latency_bounds = latency_buckets
        self.overhead_bounds = overhead_buckets
        self.requests: dict[tuple[str, ...], list[int]] = {}  # TRACK_LABELS + code
        self.upstream: dict[tuple[str, ...], Buckets] = {}  # TRACK_LABELS
        self.overhead: dict[str, Buckets] = {}  # model
        # (model, track, version, revision, code) -> the three series it updates
        self._series: dict[tuple, tuple[list[int], Buckets, Buckets]] = {}

    def _series_for(self, key: tuple) -> tuple[list[int], Buckets, Buckets]:
        model, name, version, revision, code = key
        labels = (model, name, version, revision)
        count = self.requests.setdefault((*labels, str(code)), [0])
        upstream = self.upstream.setdefault(labels, Buckets(len(self.latency_bounds)))
        overhead = self.overhead.setdefault(model, Buckets(len(self.overhead_bounds)))
        series = self._series[key] = (count, upstream, overhead)
        return series

    def count(self, labels: tuple[str, str, str, str], code: int) -> None:
        """A request answered without an upstream response (503, 502, 504)."""
        self.requests.setdefault((*labels, str(code)), [0])[0] += 1

    def answered(
        self,
        model: str,
        name: str,
        version: str,
        revision: str,
        code: int,
        upstream_s: float,
        overhead_s: float,
    ) -> None:
        key = (model, name, version, revision, code)
        series = self._series.get(key) or self._series_for(key)
        count, upstream, overhead = series
        count[0] += 1
        upstream.counts[bisect_left(self.latency_bounds, upstream_s)] += 1
        upstream.total += upstream_s
        overhead_s = max(overhead_s, 0.0)
        overhead.counts[bisect_left(self.overhead_bounds, overhead_s)] += 1
        overhead.total += overhead_s

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "modeldeploy_router_requests",
            "Requests answered, by track and status code",
            labels=(*TRACK_LABELS, "code"),
        )
        for labels, count in self.requests.items():
            requests.add_metric(labels, count[0])
        yield requests
        upstream = HistogramMetricFamily(
            "modeldeploy_router_upstream_duration_seconds",
            "Time from sending the request upstream to having its whole response",
            labels=TRACK_LABELS,
        )
        for labels, series in self.upstream.items():
            upstream.add_metric(labels, series.samples(self.latency_bounds), series.total)
        yield upstream
        overhead = HistogramMetricFamily(
            "modeldeploy_router_overhead_seconds",
            "Time the router adds: total handling time minus upstream time",
            labels=("model",),
        )
        for model, series in self.overhead.items():
            overhead.add_metric((model,), series.samples(self.overhead_bounds), series.total)
        yield overhead
