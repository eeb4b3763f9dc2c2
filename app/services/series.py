"""Metric series for charts, downsampled on the server, and a group's points for parallel
coordinates: the dashboard's reads, usable by any client."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import TextClause, bindparam, case, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.dialects import is_postgres, upsert
from app.errors import BadRequest, PayloadTooLarge
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
from app.logic.errors import SpecError
from app.logic.hptuning import parse_hptuning
from app.logic.matrix import space_size
from app.logic.search.hyperband import schedule
from app.models import Experiment, ExperimentGroup, MetricSeries, MetricSeriesHead
from app.models.base import UTCDateTime
from app.models.experiments import RUN_POINTS

MAX_NAMES = 10
# Raw points one range request reads for a series (16 bytes each held): about 64 MiB at most.
MAX_RAW_POINTS = 4_000_000
STREAM_CHUNK = 20_000
# The metric that is the x axis of the others; it has no series of its own.
STEP = "step"

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


async def record(
    session: AsyncSession, exp_id: int, points: Sequence[tuple[dict[str, float], datetime]]
) -> None:
    """Feed each metric name's series (and its tiers) with `points`, stored as metric rows in
    the same transaction, in their order. Three statements whatever the batch: the heads give
    each name its next index (the run's row lock, taken first by the caller, orders concurrent
    writers), then one upsert writes every level. On Postgres, one point (a training step: the
    hot path) takes a single statement that does both."""
    statements = _statements(session)
    if len(points) == 1 and statements.one_point is not None:
        values, created = points[0]
        names = sorted(name for name in values if name != STEP)
        await session.execute(
            statements.one_point,
            {
                "exp_id": exp_id,
                "heads": [RUN_POINTS, *names],
                "names": names,
                "values": [float(values[name]) for name in names],
                "step": None if values.get(STEP) is None else float(values[STEP]),
                "at": created,
                "levels": [0, *TIER_LEVELS],
            },
        )
        return
    by_name: dict[str, list[int]] = {}
    for i, (values, _) in enumerate(points):
        for name in values:
            if name != STEP:
                by_name.setdefault(name, []).append(i)
    counts = {RUN_POINTS: len(points)} | {name: len(found) for name, found in by_name.items()}
    heads = await _bump_heads(session, exp_id, counts)
    run_start = heads[RUN_POINTS] - len(points)
    steps = [_step(values, run_start + i) for i, (values, _) in enumerate(points)]
    rows: list[dict[str, Any]] = []
    for name in sorted(by_name):
        found = by_name[name]
        start = heads[name] - len(found)
        series = [SeriesPoint(steps[i], points[i][1], points[i][0][name]) for i in found]
        for offset, point in enumerate(series):
            rows.append(_row(exp_id, name, Tier(0, start + offset, 1, point, point), high=False))
        rows.extend(_row(exp_id, name, tier, high=True) for tier in tiers_of(start, series))
    if rows:
        await session.execute(statements.upsert_series, rows)


def _step(values: dict[str, float], position: int) -> float:
    step = values.get(STEP)
    return float(step) if step is not None else float(position)


def _row(exp_id: int, name: str, tier: Tier, *, high: bool) -> dict[str, Any]:
    return {
        "experiment_id": exp_id,
        "name": name,
        "level": tier.level,
        "bucket": tier.bucket,
        "points": tier.points,
        "step": tier.low.step,
        "at": tier.low.at,
        "value": tier.low.value,
        "high_step": tier.high.step if high else None,
        "high_at": tier.high.at if high else None,
        "high_value": tier.high.value if high else None,
    }


async def _bump_heads(session: AsyncSession, exp_id: int, counts: dict[str, int]) -> dict[str, int]:
    """Add `counts` to the heads; returns each name's new number of points."""
    rows = [{"experiment_id": exp_id, "name": n, "points": c} for n, c in sorted(counts.items())]
    result = await session.execute(_statements(session).bump_heads, rows)
    return {str(name): int(points) for name, points in result.all()}


class _Statements:
    """The write statements of `record` for one dialect, built once (bound parameters only)."""

    def __init__(self, session: AsyncSession) -> None:
        heads = upsert(session, MetricSeriesHead)
        self.bump_heads = heads.on_conflict_do_update(
            index_elements=["experiment_id", "name"],
            set_={"points": MetricSeriesHead.points + heads.excluded.points},
        ).returning(MetricSeriesHead.name, MetricSeriesHead.points)
        stmt = upsert(session, MetricSeries)
        new = stmt.excluded
        lower = new.value < MetricSeries.value
        higher = new.high_value > MetricSeries.high_value
        self.upsert_series = stmt.on_conflict_do_update(
            index_elements=["experiment_id", "name", "level", "bucket"],
            set_={
                "points": MetricSeries.points + new.points,
                "step": case((lower, new.step), else_=MetricSeries.step),
                "at": case((lower, new.at), else_=MetricSeries.at),
                "value": case((lower, new.value), else_=MetricSeries.value),
                "high_step": case((higher, new.high_step), else_=MetricSeries.high_step),
                "high_at": case((higher, new.high_at), else_=MetricSeries.high_at),
                "high_value": case((higher, new.high_value), else_=MetricSeries.high_value),
            },
        )

        self.one_point = _one_point_postgres() if is_postgres(session) else None


# Upsert of a tier row: add the points, keep the lower low and the higher high (the stored one
# on ties: it is the earlier point).
_MERGE_TIER = """
    points = s.points + excluded.points,
    step = CASE WHEN excluded.value < s.value THEN excluded.step ELSE s.step END,
    at = CASE WHEN excluded.value < s.value THEN excluded.at ELSE s.at END,
    value = CASE WHEN excluded.value < s.value THEN excluded.value ELSE s.value END,
    high_step = CASE WHEN excluded.high_value > s.high_value
        THEN excluded.high_step ELSE s.high_step END,
    high_at = CASE WHEN excluded.high_value > s.high_value THEN excluded.high_at ELSE s.high_at END,
    high_value = CASE WHEN excluded.high_value > s.high_value
        THEN excluded.high_value ELSE s.high_value END
"""


def _one_point_postgres() -> TextClause:
    """`record` of one point in one round trip: the heads' upsert returns each name's index
    (and the run's position for a point without `step`), from which every level's row of each
    name is upserted. The same rows as the general path (see test_dashboard_api)."""
    sql = f"""
        WITH heads AS (
            INSERT INTO metric_series_heads AS h (experiment_id, name, points)
            SELECT :exp_id, n.name, 1 FROM unnest(CAST(:heads AS varchar[])) AS n(name)
            ON CONFLICT (experiment_id, name) DO UPDATE SET points = h.points + 1
            RETURNING name, points
        ), point AS (
            SELECT COALESCE(CAST(:step AS float8), points - 1) AS step FROM heads WHERE name = ''
        )
        INSERT INTO metric_series AS s (experiment_id, name, level, bucket, points, step, at,
            value, high_step, high_at, high_value)
        SELECT :exp_id, p.name, l.level, (heads.points - 1) >> l.level, 1, point.step, :at,
            p.value,
            CASE WHEN l.level > 0 THEN point.step END,
            CASE WHEN l.level > 0 THEN CAST(:at AS timestamptz) END,
            CASE WHEN l.level > 0 THEN p.value END
        FROM unnest(CAST(:names AS varchar[]), CAST(:values AS float8[])) AS p(name, value)
        JOIN heads ON heads.name = p.name
        CROSS JOIN point
        CROSS JOIN unnest(CAST(:levels AS int[])) AS l(level)
        ON CONFLICT (experiment_id, name, level, bucket) DO UPDATE SET {_MERGE_TIER}
    """
    return text(sql).bindparams(bindparam("at", type_=UTCDateTime()))


_STATEMENTS: dict[bool, _Statements] = {}


def _statements(session: AsyncSession) -> _Statements:
    postgres = is_postgres(session)
    found = _STATEMENTS.get(postgres)
    if found is None:
        found = _STATEMENTS[postgres] = _Statements(session)
    return found


async def experiment_series(
    session: AsyncSession, exp: Experiment, query: SeriesQuery
) -> dict[str, Any]:
    """Every requested series of one experiment, at most `query.points` points each, keeping
    the lowest and highest point of each bucket. The x of a point is its `step` value when the
    point carries one, else its position among the run's points (step axis), or its time in
    seconds since the epoch (time axis). `x_min`/`x_max` narrow to a range (zooming), read at
    full resolution; the whole series is read from the coarsest fitting tier."""
    rows = await session.execute(
        select(MetricSeriesHead.name, MetricSeriesHead.points).where(
            MetricSeriesHead.experiment_id == exp.id,
            MetricSeriesHead.name.in_([RUN_POINTS, *query.names]),
        )
    )
    heads = {str(name): int(points) for name, points in rows.all()}
    series = []
    for name in query.names:
        total = heads.get(name, 0)
        if query.x_min is not None or query.x_max is not None:
            series.append(await _range(session, exp.id, name, query))
        elif total:
            series.append(await _whole(session, exp.id, name, total, query))
        else:
            series.append({"name": name, "count": 0, "x": [], "y": []})
    return {
        "experiment": exp.id,
        "axis": query.axis,
        "total": heads.get(RUN_POINTS, 0),
        "series": series,
    }


def _of(exp_id: int, name: str, level: int) -> list[Any]:
    return [
        MetricSeries.experiment_id == exp_id,
        MetricSeries.name == name,
        MetricSeries.level == level,
    ]


async def _whole(
    session: AsyncSession, exp_id: int, name: str, total: int, query: SeriesQuery
) -> dict[str, Any]:
    level = level_for(total, query.points)
    if level == 0:  # few enough points to read them all (at most 8 per point asked for)
        rows = await session.execute(
            select(MetricSeries.step, MetricSeries.at, MetricSeries.value)
            .where(*_of(exp_id, name, 0))
            .order_by(MetricSeries.bucket)
        )
        xs, ys = array("d"), array("d")
        for step, at, value in rows:
            xs.append(_x(query.axis, step, at))
            ys.append(value)
        return _downsample(name, xs, ys, query.points)
    # The first and the last point, each an equality on the whole key (an IN list is not
    # always used as an index condition: Postgres then filters the run's million rows).
    first_last = [
        select(MetricSeries.step, MetricSeries.at, MetricSeries.value).where(
            *_of(exp_id, name, 0), MetricSeries.bucket == bucket
        )
        for bucket in (0, total - 1)
    ]
    ends = [(await session.execute(stmt)).one() for stmt in first_last]
    first, last = [(_x(query.axis, step, at), value) for step, at, value in ends]
    tiers = await session.execute(
        select(
            MetricSeries.step,
            MetricSeries.at,
            MetricSeries.value,
            MetricSeries.high_step,
            MetricSeries.high_at,
            MetricSeries.high_value,
        )
        .where(*_of(exp_id, name, level))
        .order_by(MetricSeries.bucket)
    )
    tier_rows: Sequence[Any] = tiers.all()  # a tier row always has its highest point
    extremes = [
        ((_x(query.axis, step, at), value), (_x(query.axis, h_step, h_at), h_value))
        for step, at, value, h_step, h_at, h_value in tier_rows
    ]
    out_x, out_y = from_tiers(first, extremes, last, query.points)
    return {"name": name, "count": total, "x": out_x, "y": out_y}


async def _range(
    session: AsyncSession, exp_id: int, name: str, query: SeriesQuery
) -> dict[str, Any]:
    """The points of one series within the x range, read at full resolution over an index
    (step axis) in keyset pages, then downsampled."""
    where = _of(exp_id, name, 0)
    column = MetricSeries.step if query.axis == "step" else MetricSeries.at
    low = query.x_min if query.axis == "step" else _utc_or_none(query.x_min)
    high = query.x_max if query.axis == "step" else _utc_or_none(query.x_max)
    if low is not None:
        where.append(column >= low)
    if high is not None:
        where.append(column <= high)
    count = await session.scalar(select(func.count()).select_from(MetricSeries).where(*where))
    if (count or 0) > MAX_RAW_POINTS:
        raise PayloadTooLarge(
            f"{count} points of `{name}` in this range (at most {MAX_RAW_POINTS} per request):"
            " narrow the x range."
        )
    xs, ys = array("d"), array("d")
    after: tuple[Any, int] | None = None
    while True:
        stmt = select(
            column, MetricSeries.bucket, MetricSeries.step, MetricSeries.at, MetricSeries.value
        ).where(*where)
        if after is not None:
            stmt = stmt.where(tuple_(column, MetricSeries.bucket) > after)
        rows = (
            await session.execute(stmt.order_by(column, MetricSeries.bucket).limit(STREAM_CHUNK))
        ).all()
        for _, _, step, at, value in rows:
            xs.append(_x(query.axis, step, at))
            ys.append(value)
        if len(rows) < STREAM_CHUNK:
            break
        after = (rows[-1][0], rows[-1][1])
    return _downsample(name, xs, ys, query.points)


def _utc_or_none(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def _x(axis: Axis, step: float, at: datetime) -> float:
    return step if axis == "step" else at.timestamp()


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
