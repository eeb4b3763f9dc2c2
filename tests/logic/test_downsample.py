"""Min/max-per-bucket downsampling: bounded output that keeps every spike and both ends."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.logic.downsample import MinMaxSeries, bucket_size


def downsample(ys: list[float], points: int) -> tuple[list[float], list[float]]:
    sampler = MinMaxSeries(bucket=bucket_size(len(ys), points))
    for x, y in enumerate(ys):
        sampler.add(float(x), y)
    return sampler.finish()


def test_short_series_are_kept_whole() -> None:
    assert downsample([3.0, 1.0, 2.0], 10) == ([0.0, 1.0, 2.0], [3.0, 1.0, 2.0])


def test_a_spike_survives_a_million_points() -> None:
    ys = [1.0] * 1_000_000
    ys[123_457] = 99.0
    xs, out = downsample(ys, 2000)
    assert len(xs) <= 2002
    assert 99.0 in out and xs[out.index(99.0)] == 123_457.0


def test_bucket_size_needs_two_points() -> None:
    with pytest.raises(ValueError):
        bucket_size(10, 1)


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(st.lists(finite, max_size=3000), st.integers(min_value=2, max_value=500))
def test_bounded_ordered_and_extremes_kept(ys: list[float], points: int) -> None:
    xs, out = downsample(ys, points)
    assert len(xs) <= points + 2  # the first and last points are kept beside the pairs
    assert xs == sorted(xs)
    if ys:
        assert min(out) == min(ys) and max(out) == max(ys)
        assert xs[0] == 0.0 and xs[-1] == float(len(ys) - 1)
        assert all(ys[int(x)] == y for x, y in zip(xs, out, strict=True))


def test_non_finite_values_are_skipped() -> None:
    assert downsample([1.0, float("nan"), float("inf"), 2.0], 10)[1] == [1.0, 2.0]
