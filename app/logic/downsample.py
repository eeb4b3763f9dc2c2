"""Downsampling of metric series for charts: min and max per bucket, streamed.

A chart of 2,000 pixels cannot show a million points, but it must show the spikes: averaging
would hide a divergence. Each bucket of consecutive points keeps its lowest and its highest point
(in x order), so the drawn envelope is exact; the first and last points are always kept. Points
arrive one at a time and only the open bucket is held, so memory does not grow with the series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Point = tuple[float, float]


def bucket_size(total: int, max_points: int) -> int:
    """Points per bucket so that `total` points give at most `max_points` (two per bucket)."""
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if total <= max_points:
        return 1
    return math.ceil(total / (max_points // 2))


@dataclass
class MinMaxSeries:
    """One series being downsampled; `bucket` points per bucket (1: keep every point)."""

    bucket: int
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    _low: Point | None = None
    _high: Point | None = None
    _in_bucket: int = 0
    _seen: int = 0
    _last: Point | None = None

    def add(self, x: float, y: float) -> None:
        if not math.isfinite(y):
            return
        self._seen += 1
        self._last = (x, y)
        if self.bucket == 1 or self._seen == 1:
            self._emit((x, y))
            if self.bucket == 1:
                return
        if self._low is None or y < self._low[1]:
            self._low = (x, y)
        if self._high is None or y > self._high[1]:
            self._high = (x, y)
        self._in_bucket += 1
        if self._in_bucket == self.bucket:
            self._close()

    def _close(self) -> None:
        if self._low is not None and self._high is not None:
            for point in sorted({self._low, self._high}, key=lambda p: p[0]):
                self._emit(point)
        self._low = self._high = None
        self._in_bucket = 0

    def _emit(self, point: Point) -> None:
        if self.xs and self.xs[-1] == point[0] and self.ys[-1] == point[1]:
            return
        self.xs.append(point[0])
        self.ys.append(point[1])

    def finish(self) -> tuple[list[float], list[float]]:
        """Close the open bucket and make sure the last point is kept."""
        self._close()
        if self._last is not None and (not self.xs or self.xs[-1] != self._last[0]):
            self._emit(self._last)
        return self.xs, self.ys

    @property
    def seen(self) -> int:
        return self._seen


# Levels of pre-aggregated tiers: a bucket of level k holds 2^k consecutive points. One level in
# four keeps writes cheap (a point updates one row per level); a read picks the level whose
# buckets are at most as large as the ones asked for, so it reads at most 16 times as many rows
# as it returns.
TIER_LEVELS = (4, 8, 12, 16)


@dataclass(frozen=True)
class SeriesPoint:
    """One point of one metric's series; `at` is carried along (the time axis), not compared."""

    step: float
    at: Any
    value: float


@dataclass
class Tier:
    """The lowest and the highest point of a bucket of `points` consecutive points (the earliest
    one on ties, as in `MinMaxSeries`)."""

    level: int
    bucket: int
    points: int
    low: SeriesPoint
    high: SeriesPoint

    def add(self, other: Tier) -> None:
        self.points += other.points
        if other.low.value < self.low.value:
            self.low = other.low
        if other.high.value > self.high.value:
            self.high = other.high


def tiers_of(start: int, points: Sequence[SeriesPoint]) -> list[Tier]:
    """The tier rows that `points`, indexes `start`, `start + 1`... of one series, fall into,
    each summarising only these points (the database merges them into the stored rows)."""
    found: dict[tuple[int, int], Tier] = {}
    for offset, point in enumerate(points):
        index = start + offset
        for level in TIER_LEVELS:
            key = (level, index >> level)
            tier = found.get(key)
            if tier is None:
                found[key] = Tier(level, key[1], 1, point, point)
            else:
                tier.add(Tier(level, key[1], 1, point, point))
    return list(found.values())


def level_for(total: int, max_points: int) -> int:
    """The coarsest tier level whose buckets hold no more points than `bucket_size` asks for;
    0 (every point) when even the finest level is too coarse."""
    wanted = bucket_size(total, max_points)
    usable = [level for level in TIER_LEVELS if 1 << level <= wanted]
    return usable[-1] if usable else 0


def from_tiers(
    first: Point, tiers: Sequence[tuple[Point, Point]], last: Point, max_points: int
) -> tuple[list[float], list[float]]:
    """At most `max_points` points from the (lowest, highest) points of consecutive buckets:
    groups of neighbouring buckets are merged (their extremes are the group's), then the first
    and the last points of the series are added, and everything is put in x order."""
    budget = (max_points - 2) // 2  # groups, each giving two points, besides first and last
    kept: list[Point] = [first, last]
    if budget > 0 and tiers:
        per_group = math.ceil(len(tiers) / budget)
        for start in range(0, len(tiers), per_group):
            group = tiers[start : start + per_group]
            low = min((t[0] for t in group), key=lambda p: p[1])
            high = max((t[1] for t in group), key=lambda p: p[1])
            kept.extend((low, high))
    xs: list[float] = []
    ys: list[float] = []
    for x, y in sorted(set(kept)):
        xs.append(x)
        ys.append(y)
    return xs, ys
