"""Metric series for charts, downsampled on the server, and a group's points for parallel
coordinates: the dashboard's reads, usable by any client."""

from __future__ import annotations

from array import array
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, PayloadTooLarge
from app.logic.downsample import MinMaxSeries, bucket_size
from app.logic.errors import SpecError
from app.logic.hptuning import parse_hptuning
from app.logic.matrix import space_size
from app.logic.search.hyperband import schedule
from app.models import Experiment, ExperimentGroup, ExperimentMetric

MAX_NAMES = 10
# Raw points held while one request reads a series (16 bytes each): about 64 MiB at most.
MAX_RAW_POINTS = 4_000_000
STREAM_CHUNK = 5_000

Axis = Literal["step", "time"]


@dataclass(frozen=True)
class SeriesQuery:
    names: Sequence[str]
    points: int
    axis: Axis
    x_min: float | None = None
    x_max: float | None = None


def parse_names(raw: str | None, last_metric: dict[str, Any] | None) -> list[str]:
    """Comma-separated names; all of the run's metrics (but `step`) when not given."""
    if raw:
        names = [n.strip() for n in raw.split(",") if n.strip()]
    else:
        names = sorted(k for k in (last_metric or {}) if k != "step")
    if len(names) > MAX_NAMES:
        raise BadRequest(f"names: at most {MAX_NAMES} metric names per request (got {len(names)})")
    if any(len(n) > 256 for n in names):
        raise BadRequest("names: a metric name is longer than 256 characters")
    return list(dict.fromkeys(names))


async def experiment_series(
    session: AsyncSession, exp: Experiment, query: SeriesQuery
) -> dict[str, Any]:
    """Every requested series of one experiment, at most `query.points` points each, keeping
    the lowest and highest point of each bucket. The x of a point is its `step` value when the
    point carries one, else its position among the run's points (step axis), or its time in
    seconds since the epoch (time axis). `x_min`/`x_max` narrow to a range (zooming)."""
    total = await session.scalar(
        select(func.count()).where(ExperimentMetric.experiment_id == exp.id)
    )
    if (total or 0) * max(len(query.names), 1) > MAX_RAW_POINTS and query.x_min is None:
        raise PayloadTooLarge(
            f"This run has {total} metric points: ask for fewer names or an x range"
            f" (at most {MAX_RAW_POINTS} points per request)."
        )
    raw = {name: (array("d"), array("d")) for name in query.names}
    held = 0
    position = 0
    async for created_at, values in _points(session, exp.id, query):
        x = _x(query.axis, created_at.timestamp(), values, position)
        position += 1
        if x is None or not _in_range(x, query):
            continue
        for name, (xs, ys) in raw.items():
            y = values.get(name) if isinstance(values, dict) else None
            if isinstance(y, int | float) and not isinstance(y, bool):
                xs.append(x)
                ys.append(float(y))
                held += 1
        if held > MAX_RAW_POINTS:
            raise PayloadTooLarge(
                f"More than {MAX_RAW_POINTS} points in this range: narrow the x range."
            )
    series = [_downsample(name, xs, ys, query.points) for name, (xs, ys) in raw.items()]
    return {"experiment": exp.id, "axis": query.axis, "total": total or 0, "series": series}


async def _points(
    session: AsyncSession, exp_id: int, query: SeriesQuery
) -> AsyncIterator[tuple[datetime, Any]]:
    """The run's points oldest first, read in keyset pages (no server-side cursor, which a
    read-only session outside a transaction cannot hold on Postgres)."""
    where = [ExperimentMetric.experiment_id == exp_id]
    if query.axis == "time" and query.x_min is not None:
        where.append(ExperimentMetric.created_at >= _utc(query.x_min))
    if query.axis == "time" and query.x_max is not None:
        where.append(ExperimentMetric.created_at <= _utc(query.x_max))
    after: tuple[datetime, int] | None = None
    while True:
        stmt = select(ExperimentMetric.created_at, ExperimentMetric.id, ExperimentMetric.values)
        stmt = stmt.where(*where)
        if after is not None:
            stmt = stmt.where(tuple_(ExperimentMetric.created_at, ExperimentMetric.id) > after)
        stmt = stmt.order_by(ExperimentMetric.created_at, ExperimentMetric.id).limit(STREAM_CHUNK)
        rows = (await session.execute(stmt)).all()
        for created_at, _, values in rows:
            yield created_at, values
        if len(rows) < STREAM_CHUNK:
            return
        after = (rows[-1][0], rows[-1][1])


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _x(axis: Axis, seconds: float, values: Any, position: int) -> float | None:
    if axis == "time":
        return seconds
    step = values.get("step") if isinstance(values, dict) else None
    if isinstance(step, int | float) and not isinstance(step, bool):
        return float(step)
    return float(position)


def _in_range(x: float, query: SeriesQuery) -> bool:
    return (query.x_min is None or x >= query.x_min) and (query.x_max is None or x <= query.x_max)


def _downsample(name: str, xs: array, ys: array, points: int) -> dict[str, Any]:
    if len(xs) > 1 and any(xs[i] > xs[i + 1] for i in range(len(xs) - 1)):
        order = sorted(range(len(xs)), key=xs.__getitem__)
        xs, ys = array("d", (xs[i] for i in order)), array("d", (ys[i] for i in order))
    sampler = MinMaxSeries(bucket=bucket_size(len(xs), points))
    for x, y in zip(xs, ys, strict=True):
        sampler.add(x, y)
    out_x, out_y = sampler.finish()
    return {"name": name, "count": len(xs), "x": out_x, "y": out_y}


async def group_points(
    session: AsyncSession, group: ExperimentGroup, *, metric: str | None, limit: int, offset: int
) -> dict[str, Any]:
    """Each experiment of a group with its status, declarations and final value of `metric`
    (its last reported value), oldest first: one page of a parallel-coordinates plot."""
    where = Experiment.experiment_group_id == group.id
    count = await session.scalar(select(func.count()).select_from(Experiment).where(where))
    rows = await session.execute(
        select(
            Experiment.id,
            Experiment.last_status,
            Experiment.declarations,
            Experiment.last_metric,
            Experiment.iteration,
            Experiment.original_id,
        )
        .where(where)
        .order_by(Experiment.id.asc())
        .limit(limit)
        .offset(offset)
    )
    results = []
    for exp_id, status, declarations, last_metric, iteration, original in rows:
        value = (last_metric or {}).get(metric) if metric else None
        results.append(
            {
                "id": exp_id,
                "status": status,
                "declarations": declarations or {},
                "metric": value if isinstance(value, int | float) else None,
                "iteration": iteration,
                "original": original,
            }
        )
    return {"count": count or 0, "metric": metric, "results": results, "rungs": rungs_of(group)}


def rungs_of(group: ExperimentGroup) -> list[dict[str, Any]]:
    """A hyperband group's schedule: each iteration's bracket, rung, configs and resource (its
    experiments carry the iteration; a promoted one is a copy whose `original` was in the rung
    below). Empty for other searches."""
    try:
        config = parse_hptuning(group.hptuning or {})
    except (SpecError, ValueError):  # a stored group always parsed once; be safe anyway
        return []
    if config.hyperband is None:
        return []
    space = space_size(tuple(config.matrix.values()))
    return [
        {
            "iteration": r.iteration,
            "bracket": r.bracket,
            "rung": r.rung,
            "n_configs": r.n_configs,
            "resource": r.resource,
        }
        for r in schedule(config.hyperband, space)
    ]
