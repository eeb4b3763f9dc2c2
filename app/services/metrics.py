"""Experiment metrics: validated points, stored in one transaction, shallow-merged last_metric,
and fed to each name's series (app/services/series.py) for the charts."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    bindparam,
    cast,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.dialects import is_postgres
from app.errors import BadRequest, PayloadTooLarge
from app.models import Experiment, ExperimentMetric
from app.models.base import Base, utcnow
from app.services import series
from app.services.listing import ListParams, paginate

MAX_KEYS = 1000
# Metric rows have no uuid column (v0 neither), but polyaxon-client's schema requires one: a
# stable name-based uuid of the row id.
_METRIC_NS = uuid.UUID("6f0c1d52-5a3e-4f6b-9a51-3e1c2b7d9a10")


def _point(item: Any, where: str) -> tuple[dict[str, float], datetime]:
    if not isinstance(item, dict):
        raise BadRequest(f"{where}: expected an object with `values`")
    values = item.get("values")
    if not isinstance(values, dict) or not values:
        raise BadRequest(f"{where}.values: expected a non-empty object of numbers")
    if len(values) > MAX_KEYS:
        raise BadRequest(f"{where}.values: at most {MAX_KEYS} metrics per point")
    clean: dict[str, float] = {}
    for key, value in values.items():
        if not key or len(key) > 256:
            raise BadRequest(f"{where}.values: metric names must have 1 to 256 characters")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"{where}.values.{key}: `{value!r}` is not a number")
        if not math.isfinite(value):
            raise BadRequest(f"{where}.values.{key}: NaN and infinity are not accepted")
        clean[key] = value
    created = item.get("created_at")
    if created is None:
        return clean, utcnow()
    try:
        stamp = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{where}.created_at: `{created}` is not an ISO-8601 datetime") from None
    return clean, stamp


def validate_points(body: Any, *, limit: int) -> list[tuple[dict[str, float], datetime]]:
    """An object or a list of objects `{values, created_at?}`; 413 beyond `limit` points."""
    if isinstance(body, list):
        if not body:
            raise BadRequest("body: an empty list of metrics")
        if len(body) > limit:
            raise PayloadTooLarge(
                f"At most {limit} metric points per request (got {len(body)}); send batches."
            )
        return [_point(item, f"[{i}]") for i, item in enumerate(body)]
    return [_point(body, "body")]


async def add_metrics(
    session: AsyncSession,
    exp: Experiment,
    points: list[tuple[dict[str, float], datetime]],
    *,
    dedupe: bool = False,
) -> dict[str, Any] | None:
    """Store every point; returns the row (as metric_out) when one point was sent.

    `dedupe`: skip the points already stored with the same `created_at` and values, so a client
    that retries a batch whose answer it lost (server restart, network error) stores it once.

    Core statements, not the ORM unit of work: this is the hottest write of the API (every
    training step of every run), and a flush costs more than the INSERT itself. The statements
    are built once (bound parameters only): building one and computing its cache key per request
    cost more than the rest of the request's SQL work."""
    merged: dict[str, float] = {}
    for values, _ in points:
        merged.update(values)
    postgres = is_postgres(session)
    now = utcnow()
    update_params = {"exp_id": exp.id, "merged": json.dumps(merged), "now": now}
    if dedupe:
        await _add_new(session, exp, points, update_params, postgres)
        return None
    result = None
    if len(points) == 1:
        values, created = points[0]
        if postgres:
            # One round trip: the INSERT rides in the UPDATE as a data-modifying CTE.
            metric_id = await session.scalar(
                _statements(True).add_and_merge,
                {**update_params, "m_exp_id": exp.id, "values": values, "created": created},
            )
            await series.record(session, exp.id, points)
            return _out(metric_id, exp.id, created, values)
        metric_id = await session.scalar(
            _statements(False).add, {"m_exp_id": exp.id, "values": values, "created": created}
        )
        result = _out(metric_id, exp.id, created, values)
    else:
        await session.execute(
            insert(ExperimentMetric),
            [{"experiment_id": exp.id, "values": v, "created_at": c} for v, c in points],
        )
    # The merge happens in the UPDATE itself, on the row version it locks: concurrent posts
    # never lose each other's keys, without a SELECT ... FOR UPDATE round trip first.
    await session.execute(_statements(postgres).merge, update_params)
    await series.record(session, exp.id, points)
    # The session's copy of `exp` is stale now: no caller reads it after this.
    return result


async def _add_new(
    session: AsyncSession,
    exp: Experiment,
    points: list[tuple[dict[str, float], datetime]],
    update_params: dict[str, Any],
    postgres: bool,
) -> None:
    # The UPDATE goes first: it locks the experiment's row (the database on SQLite), so a retry
    # racing the request it repeats waits for it, and the SELECT below sees its points.
    await session.execute(_statements(postgres).merge, update_params)
    stamps = [created for _, created in points]
    stored = await session.execute(
        select(ExperimentMetric.created_at, ExperimentMetric.values).where(
            ExperimentMetric.experiment_id == exp.id,
            ExperimentMetric.created_at >= min(stamps),
            ExperimentMetric.created_at <= max(stamps),
        )
    )
    seen = {_key(values, created) for created, values in stored.all()}
    new = []
    for values, created in points:
        key = _key(values, created)
        if key not in seen:
            seen.add(key)
            new.append((values, created))
    if new:
        await session.execute(
            insert(ExperimentMetric),
            [{"experiment_id": exp.id, "values": v, "created_at": c} for v, c in new],
        )
        await series.record(session, exp.id, new)


def _key(values: dict[str, Any], created: datetime) -> tuple[Any, ...]:
    stamp = created if created.tzinfo else created.replace(tzinfo=UTC)  # naive is UTC, as stored
    return (stamp.astimezone(UTC), tuple(sorted((k, float(v)) for k, v in values.items())))


class _Statements:
    """Core statements of add_metrics for one dialect, with bound parameters: `exp_id`,
    `merged` (JSON text of the keys to write over last_metric), `now`; the INSERT takes
    `m_exp_id`, `values` and `created`."""

    def __init__(self, postgres: bool) -> None:
        experiments = _table(Experiment)
        last_metric = experiments.c.last_metric
        merged = bindparam("merged", type_=String())
        merge_sql: ColumnElement[Any]
        if postgres:
            empty = cast(literal("{}"), JSONB)
            merge_sql = func.coalesce(last_metric, empty).op("||")(cast(merged, JSONB))
        else:
            # SQLite's json_patch deletes keys set to null, but values are finite numbers, so
            # it is a plain shallow merge here.
            merge_sql = func.json_patch(func.coalesce(last_metric, "{}"), merged)
        self.merge = (
            update(experiments)
            .where(experiments.c.id == bindparam("exp_id"))
            .values(
                last_metric=merge_sql,
                updated_at=bindparam("now", type_=experiments.c.updated_at.type),
            )
        )
        metrics = _table(ExperimentMetric)
        self.add = (
            insert(metrics)
            .values(
                experiment_id=bindparam("m_exp_id", type_=metrics.c.experiment_id.type),
                values=bindparam("values", type_=metrics.c["values"].type),
                created_at=bindparam("created", type_=metrics.c.created_at.type),
            )
            .returning(metrics.c.id)
        )
        added = self.add.cte("added")
        self.add_and_merge = self.merge.add_cte(added).returning(
            select(added.c.id).scalar_subquery()
        )


def _table(model: type[Base]) -> Table:
    """A model's table, typed as a Table (the ORM types `__table__` as a FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


_STATEMENTS: dict[bool, _Statements] = {}


def _statements(postgres: bool) -> _Statements:
    found = _STATEMENTS.get(postgres)
    if found is None:
        found = _STATEMENTS[postgres] = _Statements(postgres)
    return found


async def list_metrics(
    session: AsyncSession, exp: Experiment, params: ListParams
) -> tuple[int, list[ExperimentMetric], str | None, str | None]:
    stmt = (
        select(ExperimentMetric)
        .where(ExperimentMetric.experiment_id == exp.id)
        .order_by(ExperimentMetric.created_at.asc(), ExperimentMetric.id.asc())
    )
    return await paginate(session, stmt, params)


def metric_out(row: ExperimentMetric) -> dict[str, Any]:
    return _out(row.id, row.experiment_id, row.created_at, row.values)


def _out(
    metric_id: int, experiment_id: int, created_at: datetime, values: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": metric_id,
        "uuid": uuid.uuid5(_METRIC_NS, str(metric_id)).hex,
        "experiment": experiment_id,
        "created_at": created_at.isoformat(),
        "values": values,
    }
