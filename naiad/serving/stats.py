"""A replica's figures: Prometheus text for scrapers and a JSON snapshot for the controller.

Requests update plain counters on the event loop (one thread, no locks, well under a
microsecond each); prometheus-client turns them into metric families only when
``/metrics`` is read, through a collector in the replica's own registry (never the
process-global one, so tests and embedders can run several replicas in one process).
"""

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INFERENCE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
WINDOW_REQUESTS = 4096  # the recent percentiles cover at most this many requests...
WINDOW_SECONDS = 60.0  # ...of at most this age


class Histogram:
    """Counts per bucket (``value <= bound``; the last one is +Inf), a sum and a count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus's buckets: (upper bound, observations at or below it)."""
        out, total = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out

    def as_dict(self) -> dict[str, object]:
        """``counts[i]`` is the observations in (le[i-1], le[i]]: per bucket, not cumulative."""
        return {"le": [*self.bounds, "+Inf"], "counts": self.counts, "sum": self.sum}


class ReplicaStats:
    """Every figure a replica keeps. Call the ``record_*`` methods from the event loop."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0) -> None:
        self.queue_depth = queue_depth
        self.started = time.time()
        self.requests: dict[int, int] = {}
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.inference = Histogram(INFERENCE_BUCKETS)
        self.in_flight = 0
        self.capture_dropped = 0
        self._recent = np.zeros(WINDOW_REQUESTS)
        self._recent_at = np.full(WINDOW_REQUESTS, -np.inf)
        self._next = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def record_request(self, status: int, seconds: float, now: float) -> None:
        """One answered request: its status, its latency and when it ended (monotonic)."""
        requests = self.requests
        requests[status] = requests.get(status, 0) + 1
        self.latency.observe(seconds)
        i = self._next
        self._recent[i] = seconds
        self._recent_at[i] = now
        self._next = (i + 1) % WINDOW_REQUESTS

    def record_batch(self, rows: int, requests: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.inference.observe(seconds)

    def record_capture_drop(self) -> None:
        self.capture_dropped += 1

    def percentiles(self, now: float) -> dict[str, float | int | None]:
        """p50/p95/p99 in milliseconds over the recent window."""
        recent = self._recent[self._recent_at >= now - WINDOW_SECONDS]
        if recent.size == 0:
            return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "window": 0}
        p50, p95, p99 = np.percentile(recent, [50, 95, 99]) * 1000
        return {
            "p50_ms": round(float(p50), 3),
            "p95_ms": round(float(p95), 3),
            "p99_ms": round(float(p99), 3),
            "window": int(recent.size),
        }

    def snapshot(self, now: float) -> dict[str, object]:
        """The JSON ``/stats`` answers; ``now`` is the monotonic clock of record_request."""
        return {
            "uptime_s": round(time.time() - self.started, 3),
            "requests": {str(code): n for code, n in sorted(self.requests.items())},
            "requests_total": sum(self.requests.values()),
            "in_flight": self.in_flight,
            "queue_depth": self.queue_depth(),
            "latency": self.percentiles(now),
            "latency_seconds": self.latency.as_dict(),
            "batch_rows": self.batch_rows.as_dict(),
            "batches": self.batch_rows.count,
            "rows": int(self.batch_rows.sum),
            "inference_seconds": self.inference.as_dict(),
            "capture_dropped": self.capture_dropped,
        }

    def collect(self) -> Iterator[Metric]:
        """The prometheus-client collector protocol: families built from the counters."""
        requests = CounterMetricFamily(
            "naiad_replica_requests", "Requests answered, by HTTP status code.", labels=["code"]
        )
        for code, n in sorted(self.requests.items()):
            requests.add_metric([str(code)], n)
        yield requests
        for name, doc, histogram in (
            ("request_seconds", "Request latency, from arrival to answer.", self.latency),
            ("batch_rows", "Rows in each batch the model ran.", self.batch_rows),
            ("inference_seconds", "Model time of each batch.", self.inference),
        ):
            yield HistogramMetricFamily(
                f"naiad_replica_{name}", doc, histogram.cumulative(), histogram.sum
            )
        yield GaugeMetricFamily(
            "naiad_replica_queue_depth", "Requests waiting for the model.", self.queue_depth()
        )
        yield GaugeMetricFamily(
            "naiad_replica_in_flight", "Requests received and not yet answered.", self.in_flight
        )
        yield CounterMetricFamily(
            "naiad_replica_capture_dropped",
            "Captured records dropped because the writer fell behind.",
            self.capture_dropped,
        )

    def prometheus(self) -> bytes:
        return generate_latest(self.registry)
