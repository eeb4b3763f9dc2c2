"""Experiment metrics: validated points, stored in one transaction, shallow-merged last_metric."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import cast, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, PayloadTooLarge
from app.models import Experiment, ExperimentMetric
from app.models.base import utcnow
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
    session: AsyncSession, exp: Experiment, points: list[tuple[dict[str, float], datetime]]
) -> dict[str, Any] | None:
    """Store every point; returns the row (as metric_out) when one point was sent.

    Core statements, not the ORM unit of work: this is the hottest write of the API (every
    training step of every run), and a flush costs more than the INSERT itself."""
    merged: dict[str, float] = {}
    for values, _ in points:
        merged.update(values)
    result = None
    if len(points) == 1:
        values, created = points[0]
        add = (
            insert(ExperimentMetric)
            .values(experiment_id=exp.id, values=values, created_at=created)
            .returning(ExperimentMetric.id)
        )
        if _postgres(session):
            # One round trip: the INSERT rides in the UPDATE as a data-modifying CTE.
            row = add.cte("added")
            metric_id = await session.scalar(
                _merge_update(session, exp, merged)
                .add_cte(row)
                .returning(select(row.c.id).scalar_subquery())
            )
            return _out(metric_id, exp.id, created, values)
        metric_id = await session.scalar(add)
        result = _out(metric_id, exp.id, created, values)
    else:
        await session.execute(
            insert(ExperimentMetric),
            [{"experiment_id": exp.id, "values": v, "created_at": c} for v, c in points],
        )
    # The merge happens in the UPDATE itself, on the row version it locks: concurrent posts
    # never lose each other's keys, without a SELECT ... FOR UPDATE round trip first.
    await session.execute(_merge_update(session, exp, merged))
    # The session's copy of `exp` is stale now: no caller reads it after this.
    return result


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _merge_update(session: AsyncSession, exp: Experiment, merged: dict[str, float]) -> Any:
    return (
        update(Experiment)
        .where(Experiment.id == exp.id)
        .values(last_metric=_shallow_merge(session, merged), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _shallow_merge(session: AsyncSession, values: dict[str, float]) -> Any:
    """SQL for `last_metric` with `values`' keys written over it (values are finite numbers, so
    SQLite's json_patch, which deletes keys set to null, is a plain shallow merge here)."""
    if _postgres(session):
        empty = cast(literal("{}"), JSONB)
        return func.coalesce(Experiment.last_metric, empty).op("||")(
            cast(literal(json.dumps(values)), JSONB)
        )
    return func.json_patch(func.coalesce(Experiment.last_metric, "{}"), json.dumps(values))


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
