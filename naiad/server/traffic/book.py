"""What the server knows about an endpoint's traffic, per variant, kept in memory.

Two sources: the keeper scrapes every replica's ``/stats`` (cumulative counters and
histograms) about once a second and turns the differences into one point per variant,
kept for ``HISTORY`` points; the proxy records each request it forwards (status and
latency as a client sees it). Replica counters restart with the replica; a drop is taken
as a restart, so totals only grow. Points not yet saved wait in ``unsaved`` until the
keeper takes them into the database as minutes (``endpoint_history``).
"""

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from naiad.schemas.endpoints import (
    EndpointMetrics,
    LatencyFigures,
    MetricsPoint,
    VariantMetrics,
)

HISTORY = 600  # points per variant: ten minutes at one scrape a second
PROXY_SAMPLES = 8192  # latencies kept per variant for the proxy's percentiles
FRESH_REPLICA_S = 5.0  # a replica first seen this young has all its counts counted


@dataclass
class Point:
    at: float
    dt: float
    requests: int
    errors: int
    client_errors: int
    latency: list[int]  # per-bucket counts in this interval
    batches: list[int]
    queue_depth: int
    in_flight: int
    rows: int = 0
    batch_count: int = 0
    busy_s: float = 0.0  # seconds the requests answered in this interval spent in the replicas
    proxy_busy_s: float = 0.0  # ...and waiting on them at the proxy (Little's law: / dt)


@dataclass
class Unsaved:
    """A variant's points the database does not have yet, with their bucket bounds."""

    latency_le: list[float]
    batch_le: list[float]
    points: list[Point] = field(default_factory=list)


@dataclass
class Series:
    points: deque[Point] = field(default_factory=lambda: deque(maxlen=HISTORY))
    unsaved: list[Point] = field(default_factory=list)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)  # replica -> snapshot
    last_at: float | None = None
    requests: int = 0
    errors: int = 0
    client_errors: int = 0
    latency_le: list[float] = field(default_factory=list)
    batch_le: list[float] = field(default_factory=list)
    proxy_at: deque[float] = field(default_factory=lambda: deque(maxlen=PROXY_SAMPLES))
    proxy_s: deque[float] = field(default_factory=lambda: deque(maxlen=PROXY_SAMPLES))
    proxy_busy_s: float = 0.0  # summed since the last scrape


def _codes(snapshot: dict[str, Any]) -> tuple[int, int, int]:
    """(requests, 5xx, 4xx) from a snapshot's requests-by-status."""
    total = server = client = 0
    for code, n in (snapshot.get("requests") or {}).items():
        total += n
        if str(code).startswith("5"):
            server += n
        elif str(code).startswith("4"):
            client += n
    return total, server, client


def _counts(snapshot: dict[str, Any], key: str) -> list[int]:
    return list((snapshot.get(key) or {}).get("counts") or [])


def _minus(a: list[int], b: list[int]) -> list[int]:
    if len(a) != len(b):
        return a
    return [max(0, x - y) for x, y in zip(a, b, strict=True)]


def add_counts(a: list[int], b: list[int]) -> list[int]:
    """Two histograms' per-bucket counts summed (``a`` alone when the buckets differ)."""
    if not a:
        return list(b)
    if len(a) != len(b):
        return a
    return [x + y for x, y in zip(a, b, strict=True)]


def quantile_ms(bounds: list[float], counts: list[int], q: float) -> float | None:
    """The q-quantile of a per-bucket histogram (seconds), interpolated within its bucket."""
    total = sum(counts)
    if total == 0 or not bounds:
        return None
    target = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= target:
            low = bounds[i - 1] if i > 0 else 0.0
            high = bounds[i] if i < len(bounds) else bounds[-1]
            return round((low + (high - low) * (target - seen) / n) * 1000, 3)
        seen += n
    return round(bounds[-1] * 1000, 3)


def batch_labels(bounds: list[float]) -> list[str]:
    """Bucket i holds (bounds[i-1], bounds[i]] rows: "1", "2", "3-4", ..., ">4096"."""
    labels, low = [], 0
    for bound in bounds:
        high = int(bound)
        labels.append(str(high) if high == low + 1 else f"{low + 1}-{high}")
        low = high
    labels.append(f">{low}")
    return labels


def _latency_sum(snapshot: dict[str, Any]) -> float:
    return float((snapshot.get("latency_seconds") or {}).get("sum") or 0.0)


def _bounds(snapshot: dict[str, Any], key: str) -> list[float]:
    le = (snapshot.get(key) or {}).get("le") or []
    return [float(b) for b in le if b != "+Inf"]


class MetricsBook:
    """Per (endpoint, variant) series; the keeper writes scrapes, the proxy writes requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], Series] = {}
        self._retries: dict[str, int] = {}
        self._unavailable: dict[str, int] = {}
        self._retired: dict[tuple[str, str], Unsaved] = {}  # variants rolled out of service

    def _get(self, endpoint: str, variant: str) -> Series:
        key = (endpoint, variant)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series()
        return series

    # -- writers ------------------------------------------------------------------------
    def observe(
        self, endpoint: str, variant: str, snapshots: dict[str, dict[str, Any]], now: float
    ) -> None:
        """One scrape of a variant's replicas (replica id -> its /stats) becomes one point."""
        with self._lock:
            series = self._get(endpoint, variant)
            requests = errors = client = queue = in_flight = rows = batch_count = 0
            busy = 0.0
            latency: list[int] = []
            batches: list[int] = []
            for replica, snap in snapshots.items():
                if not series.latency_le:
                    series.latency_le = _bounds(snap, "latency_seconds")
                    series.batch_le = _bounds(snap, "batch_rows")
                prev = series.last.get(replica)
                restarted = prev is not None and (
                    snap.get("uptime_s", 0) < prev.get("uptime_s", 0)
                    or _codes(snap)[0] < _codes(prev)[0]
                )
                if prev is None and snap.get("uptime_s", 0) > FRESH_REPLICA_S:
                    prev = snap  # counted before we watched it: only changes from now on
                elif prev is None or restarted:
                    prev = {}
                series.last[replica] = snap
                now_codes, prev_codes = _codes(snap), _codes(prev)
                requests += now_codes[0] - prev_codes[0]
                errors += now_codes[1] - prev_codes[1]
                client += now_codes[2] - prev_codes[2]
                latency = add_counts(latency, _minus(*self._pair(snap, prev, "latency_seconds")))
                batches = add_counts(batches, _minus(*self._pair(snap, prev, "batch_rows")))
                rows += max(0, int(snap.get("rows") or 0) - int(prev.get("rows") or 0))
                batch_count += max(0, int(snap.get("batches") or 0) - int(prev.get("batches") or 0))
                busy += max(0.0, _latency_sum(snap) - _latency_sum(prev))
                queue += int(snap.get("queue_depth") or 0)
                in_flight += int(snap.get("in_flight") or 0)
            for gone in set(series.last) - set(snapshots):
                del series.last[gone]
            dt = now - series.last_at if series.last_at is not None else 1.0
            series.last_at = now
            series.requests += requests
            series.errors += errors
            series.client_errors += client
            point = Point(
                now,
                max(dt, 1e-3),
                requests,
                errors,
                client,
                latency,
                batches,
                queue,
                in_flight,
                rows,
                batch_count,
                busy,
                series.proxy_busy_s,
            )
            series.proxy_busy_s = 0.0
            series.points.append(point)
            series.unsaved.append(point)

    @staticmethod
    def _pair(snap: dict[str, Any], prev: dict[str, Any], key: str) -> tuple[list[int], list[int]]:
        now = _counts(snap, key)
        before = _counts(prev, key) or [0] * len(now)
        return now, before

    def record_proxy(self, endpoint: str, variant: str, seconds: float) -> None:
        """A request the proxy forwarded and got an answer for (called on the event loop)."""
        with self._lock:
            series = self._get(endpoint, variant)
            series.proxy_at.append(time.monotonic())
            series.proxy_s.append(seconds)
            series.proxy_busy_s += seconds

    def record_retry(self, endpoint: str) -> None:
        with self._lock:
            self._retries[endpoint] = self._retries.get(endpoint, 0) + 1

    def record_unavailable(self, endpoint: str) -> None:
        with self._lock:
            self._unavailable[endpoint] = self._unavailable.get(endpoint, 0) + 1

    def forget(self, endpoint: str, keep: set[str] | None = None) -> None:
        """Drop an endpoint's series (all of them, or those of variants not in ``keep``).

        A variant rolled out of service still has its last unsaved points saved; a
        deleted endpoint has no history left to add to."""
        with self._lock:
            for key in [k for k in self._series if k[0] == endpoint]:
                if keep is None or key[1] not in keep:
                    series = self._series.pop(key)
                    if keep is not None and series.unsaved:
                        self._retired[key] = self._unsaved(series)
            if keep is None:
                self._retries.pop(endpoint, None)
                self._unavailable.pop(endpoint, None)
                for key in [k for k in self._retired if k[0] == endpoint]:
                    del self._retired[key]

    @staticmethod
    def _unsaved(series: Series) -> Unsaved:
        return Unsaved(series.latency_le, series.batch_le, series.unsaved)

    def take_unsaved(self) -> dict[tuple[str, str], Unsaved]:
        """(endpoint, variant) -> the points since the last take; the book forgets them."""
        with self._lock:
            taken = self._retired
            self._retired = {}
            for key, series in self._series.items():
                if series.unsaved:
                    taken[key] = self._unsaved(series)
                    series.unsaved = []
        return taken

    def give_back(self, taken: dict[tuple[str, str], Unsaved]) -> None:
        """Points a save could not write: kept for the next take, in order."""
        with self._lock:
            for key, unsaved in taken.items():
                series = self._series.get(key)
                if series is None:
                    self._retired[key] = unsaved
                else:
                    series.unsaved[:0] = unsaved.points

    def unsaved(self, endpoint: str) -> dict[str, Unsaved]:
        """variant -> a copy of its points the database does not have yet."""
        with self._lock:
            out = {k[1]: self._unsaved(s) for k, s in self._series.items() if k[0] == endpoint}
            out |= {k[1]: u for k, u in self._retired.items() if k[0] == endpoint}
            return {v: Unsaved(u.latency_le, u.batch_le, list(u.points)) for v, u in out.items()}

    # -- readers ------------------------------------------------------------------------
    def latest(self, endpoint: str, variant: str) -> Point | None:
        """The variant's last scrape, which the autoscaler reads."""
        with self._lock:
            series = self._series.get((endpoint, variant))
            return series.points[-1] if series is not None and series.points else None

    def figures(
        self,
        endpoint: str,
        variants: list[tuple[str, str, int]],
        window_s: float,
        history_points: int = HISTORY,
    ) -> EndpointMetrics:
        """``variants`` is (name, model, healthy replicas) for each variant to report."""
        now_wall, now_mono = time.time(), time.monotonic()
        out, history = [], {}
        with self._lock:
            for name, model, healthy in variants:
                series = self._series.get((endpoint, name)) or Series()
                recent = [p for p in series.points if p.at >= now_wall - window_s]
                out.append(self._variant(series, recent, name, model, healthy, now_mono, window_s))
                points = list(series.points)[-history_points:]
                history[name] = [point_figures(p, series.latency_le) for p in points]
            retries = self._retries.get(endpoint, 0)
            unavailable = self._unavailable.get(endpoint, 0)
        return EndpointMetrics(
            endpoint=endpoint,
            window_s=window_s,
            variants=out,
            retries=retries,
            unavailable=unavailable,
            history=history,
        )

    @staticmethod
    def _variant(
        series: Series,
        recent: list[Point],
        name: str,
        model: str,
        healthy: int,
        now_mono: float,
        window_s: float,
    ) -> VariantMetrics:
        latency: list[int] = []
        batches: list[int] = []
        for p in recent:
            latency = add_counts(latency, p.latency)
            batches = add_counts(batches, p.batches)
        seconds = sum(p.dt for p in recent)
        at = np.fromiter(series.proxy_at, float, len(series.proxy_at))
        took = np.fromiter(series.proxy_s, float, len(series.proxy_s))[at >= now_mono - window_s]
        proxy = LatencyFigures()
        if took.size:
            p50, p95, p99 = np.percentile(took, [50, 95, 99]) * 1000
            proxy = LatencyFigures(
                p50_ms=round(float(p50), 3),
                p95_ms=round(float(p95), 3),
                p99_ms=round(float(p99), 3),
            )
        last = recent[-1] if recent else None
        labels = batch_labels(series.batch_le)
        return VariantMetrics(
            variant=name,
            model=model,
            requests=series.requests,
            errors=series.errors,
            client_errors=series.client_errors,
            rps=round(sum(p.requests for p in recent) / seconds, 3) if seconds else 0.0,
            latency=LatencyFigures(
                p50_ms=quantile_ms(series.latency_le, latency, 0.50),
                p95_ms=quantile_ms(series.latency_le, latency, 0.95),
                p99_ms=quantile_ms(series.latency_le, latency, 0.99),
            ),
            proxy_latency=proxy,
            batch_sizes={label: n for label, n in zip(labels, batches, strict=False) if n},
            queue_depth=last.queue_depth if last else 0,
            in_flight=last.in_flight if last else 0,
            replicas_healthy=healthy,
        )


def point_figures(p: Point, latency_le: list[float]) -> MetricsPoint:
    """One point (a scrape, or a step of saved minutes) as the API shows it."""
    return MetricsPoint(
        at=round(p.at, 3),
        rps=round(p.requests / p.dt, 3),
        requests=p.requests,
        errors=p.errors,
        p50_ms=quantile_ms(latency_le, p.latency, 0.50),
        p99_ms=quantile_ms(latency_le, p.latency, 0.99),
        batch_mean=round(p.rows / p.batch_count, 2) if p.batch_count else None,
        queue_depth=p.queue_depth,
    )
