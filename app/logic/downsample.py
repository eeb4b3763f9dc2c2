"""Downsampling of metric series for charts: min and max per bucket, streamed.

A chart of 2,000 pixels cannot show a million points, but it must show the spikes: averaging
would hide a divergence. Each bucket of consecutive points keeps its lowest and its highest point
(in x order), so the drawn envelope is exact; the first and last points are always kept. Points
arrive one at a time and only the open bucket is held, so memory does not grow with the series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
