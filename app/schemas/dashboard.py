"""Dashboard reads: downsampled metric series of an experiment."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class SeriesOut(BaseModel):
    name: str
    count: int  # points of this series in the range, before downsampling
    x: list[float]
    y: list[float]


class ExperimentSeriesOut(BaseModel):
    experiment: int
    axis: Literal["step", "time"]
    total: int  # metric points the run has reported
    series: list[SeriesOut]
