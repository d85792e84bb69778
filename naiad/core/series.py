"""Metric series maths: ordering and min/max-preserving downsampling (numpy, no I/O)."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Series:
    """One metric's points, columnar and ordered by step (then by arrival)."""

    steps: np.ndarray  # int64
    timestamps: np.ndarray  # float64, seconds since the epoch
    values: np.ndarray  # float64; NaN and +/-inf are kept

    def __len__(self) -> int:
        return int(self.steps.shape[0])


@dataclass(frozen=True)
class Buckets:
    """A downsampled series: per bucket its first step and time, mean, min, max and count."""

    steps: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray


def merge_order(steps: np.ndarray) -> np.ndarray | None:
    """Positions that put concatenated chunks in step order, one point per step; None
    when they already are.

    When a step was logged more than once the latest arrival wins: a job retried from
    its last checkpoint logs those steps again, and a chart must not show them twice.
    """
    index = None
    if steps.size > 1 and bool(np.any(steps[1:] < steps[:-1])):
        index = np.argsort(steps, kind="stable")
        steps = steps[index]
    if steps.size > 1:
        last = np.append(steps[1:] != steps[:-1], True)  # the last arrival of each step
        if not last.all():
            index = np.flatnonzero(last) if index is None else index[last]
    return index


def concat(chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Series:
    """Join stored chunks into one series ordered by step, one point per step."""
    if not chunks:
        empty_i = np.empty(0, dtype=np.int64)
        empty_f = np.empty(0, dtype=np.float64)
        return Series(empty_i, empty_f, empty_f)
    steps = np.concatenate([c[0] for c in chunks])
    timestamps = np.concatenate([c[1] for c in chunks])
    values = np.concatenate([c[2] for c in chunks])
    index = merge_order(steps)
    if index is not None:
        steps, timestamps, values = steps[index], timestamps[index], values[index]
    return Series(steps, timestamps, values)


def downsample(
    series: Series,
    buckets: int,
    timestamps_at: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Buckets:
    """Reduce a series to at most ``buckets`` equal-width step buckets.

    Each bucket keeps its min and max so spikes survive, and its mean for the line.
    NaN points are skipped by min/max/mean unless a bucket holds nothing else, so a
    diverged run still shows NaN where everything is NaN; infinities show as such.

    ``timestamps_at(positions)``, when given, supplies the timestamps of the buckets'
    first points instead of ``series.timestamps`` (a store can then skip reading the
    rest); it is only called when the series has more than ``buckets`` points.
    """
    n = len(series)
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    if n <= buckets:
        v = series.values
        return Buckets(series.steps, series.timestamps, v, v, v, np.ones(n, dtype=np.int64))
    lo, hi = int(series.steps[0]), int(series.steps[-1])
    edges = np.linspace(lo, hi + 1, buckets + 1)
    starts = np.searchsorted(series.steps, edges[:-1], side="left")
    starts = np.unique(starts[starts < n])  # drop empty buckets
    counts = np.diff(np.append(starts, n))
    v = series.values
    with np.errstate(invalid="ignore", over="ignore"):
        mins = np.fmin.reduceat(v, starts)
        maxs = np.fmax.reduceat(v, starts)
        finite_or_inf = ~np.isnan(v)
        sums = np.add.reduceat(np.where(finite_or_inf, v, 0.0), starts)
        real = np.add.reduceat(finite_or_inf.astype(np.int64), starts)
        means = np.where(real > 0, sums / np.maximum(real, 1), np.nan)
    return Buckets(
        steps=series.steps[starts],
        timestamps=series.timestamps[starts] if timestamps_at is None else timestamps_at(starts),
        values=means,
        min=mins,
        max=maxs,
        count=counts,
    )
