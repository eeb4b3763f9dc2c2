"""Min/max-per-bucket downsampling: bounded output that keeps every spike and both ends."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.logic.downsample import (
    TIER_LEVELS,
    MinMaxSeries,
    SeriesPoint,
    Tier,
    bucket_size,
    from_tiers,
    level_for,
    tiers_of,
)


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


def _points(ys: list[float]) -> list[SeriesPoint]:
    return [SeriesPoint(float(i), None, y) for i, y in enumerate(ys)]


def _tiers_in_pieces(ys: list[float], cuts: list[int]) -> dict[tuple[int, int], Tier]:
    """The tiers the database holds after writes of the slices between `cuts`, merged as its
    upsert merges them."""
    stored: dict[tuple[int, int], Tier] = {}
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(ys)), len(ys)]
    points = _points(ys)
    for start, end in itertools.pairwise(bounds):
        for tier in tiers_of(start, points[start:end]):
            key = (tier.level, tier.bucket)
            if key in stored:
                stored[key].add(tier)
            else:
                stored[key] = tier
    return stored


@given(
    st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=300),
    st.lists(st.integers(0, 300), max_size=6),
)
def test_tiers_written_in_pieces_are_those_of_the_whole(ys: list[float], cuts: list[int]) -> None:
    stored = _tiers_in_pieces(ys, cuts)
    for level in TIER_LEVELS:
        size = 1 << level
        for bucket in range(math.ceil(len(ys) / size)):
            chunk = ys[bucket * size : (bucket + 1) * size]
            tier = stored[(level, bucket)]
            assert tier.points == len(chunk)
            # The earliest lowest and highest point of the bucket, as MinMaxSeries keeps.
            assert tier.low.step == bucket * size + chunk.index(min(chunk))
            assert tier.high.step == bucket * size + chunk.index(max(chunk))
    assert len(stored) == sum(math.ceil(len(ys) / (1 << level)) for level in TIER_LEVELS)


def test_level_for_reads_at_most_sixteen_rows_per_point_asked() -> None:
    assert level_for(1_000, 1_000) == 0  # every point
    assert level_for(5_000, 1_000) == 0  # buckets of 10: finer than the finest tier
    assert level_for(1_000_000, 2_000) == 8  # buckets of 1,000: tiers of 256 points
    assert level_for(100_000_000, 2_000) == 16
    for total in (20_000, 1_000_000, 30_000_000):
        rows = math.ceil(total / (1 << max(level_for(total, 2_000), 1)))
        assert rows <= 16 * 1_000


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=3_000), st.integers(2, 300))
def test_from_tiers_is_bounded_ordered_and_keeps_ends_and_extremes(
    ys: list[float], points: int
) -> None:
    stored = _tiers_in_pieces(ys, [])
    tiers = sorted((t for t in stored.values() if t.level == 4), key=lambda t: t.bucket)
    extremes = [((t.low.step, t.low.value), (t.high.step, t.high.value)) for t in tiers]
    last = (float(len(ys) - 1), ys[-1])
    xs, out = from_tiers((0.0, ys[0]), extremes, last, points)
    assert len(xs) <= points and xs == sorted(xs)
    assert xs[0] == 0.0 and xs[-1] == len(ys) - 1
    assert all(ys[int(x)] == y for x, y in zip(xs, out, strict=True))  # real points only
    if points >= 4:
        assert min(ys) in out and max(ys) in out
