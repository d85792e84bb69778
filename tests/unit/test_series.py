"""Downsampling keeps what a chart must show: extremes, NaN-only stretches, every point counted."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from naiad.core.series import Series, concat, downsample


def series(values: list[float], steps: list[int] | None = None) -> Series:
    steps = steps if steps is not None else list(range(len(values)))
    return Series(
        np.array(steps, dtype=np.int64),
        np.arange(len(values), dtype=np.float64),
        np.array(values, dtype=np.float64),
    )


def test_short_series_returned_whole() -> None:
    out = downsample(series([1.0, 2.0, 3.0]), 10)
    assert out.values.tolist() == [1.0, 2.0, 3.0]
    assert out.count.tolist() == [1, 1, 1]


def test_spike_survives_downsampling() -> None:
    values = [0.0] * 100_000
    values[54_321] = 9.0
    values[7] = -4.0
    out = downsample(series(values), 100)
    assert len(out.steps) == 100
    assert out.max.max() == 9.0 and out.min.min() == -4.0
    assert int(out.count.sum()) == 100_000


def test_nan_bucket_stays_nan_and_inf_shows() -> None:
    values = [1.0] * 100 + [float("nan")] * 100 + [float("inf")] + [2.0] * 99 + [3.0] * 100
    out = downsample(series(values), 4)
    assert np.isnan(out.values[1]) and np.isnan(out.max[1])
    assert np.isinf(out.max[2])


def test_concat_orders_by_step_and_latest_arrival_wins() -> None:
    a = (np.array([5, 6], np.int64), np.array([0.0, 0.0]), np.array([50.0, 60.0]))
    b = (np.array([1, 5], np.int64), np.array([1.0, 1.0]), np.array([10.0, 51.0]))
    merged = concat([a, b])
    assert merged.steps.tolist() == [1, 5, 6]
    assert merged.values.tolist() == [10.0, 51.0, 60.0]  # step 5 was logged again: keep the later


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=500),
    st.integers(min_value=1, max_value=64),
)
def test_buckets_cover_every_point(values: list[float], buckets: int) -> None:
    s = series(values, sorted(np.random.default_rng(0).integers(0, 1000, len(values)).tolist()))
    out = downsample(s, buckets)
    assert len(out.steps) <= max(buckets, 1) or len(values) <= buckets
    assert int(out.count.sum()) == len(values)
    finite = [v for v in values if not np.isnan(v)]
    if finite:
        assert np.nanmax(out.max) == max(finite)
        assert np.nanmin(out.min) == min(finite)
