"""Revision 0006 copies the existing metric rows into each name's series and tiers: the copy is
row for row what the write path (`series.record`) stores for the same points; a downgrade drops
the tables and leaves the metric rows."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.config import Settings
from app.logic.downsample import TIER_LEVELS
from app.migrate import alembic_config, upgrade
from app.services import series

BEFORE = "0005_tokens_hashed"
START = datetime(2026, 1, 1, tzinfo=UTC)


def _points() -> list[tuple[dict[str, float], datetime]]:
    """600 points (tiers of 16 and 256 points), `acc` every third one, `step` missing at the
    end (those points are at their position in the run), a spike, and two equal lows."""
    points = []
    for i in range(600):
        values: dict[str, float] = {"loss": 1.0 / (i + 1)}
        if i % 3 == 0:
            values["acc"] = i % 7
        if i < 550:
            values["step"] = 10 * i
        points.append((values, START + timedelta(seconds=i)))
    points[300][0]["loss"] = 50.0
    return points


@pytest.fixture
async def old_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    else:
        from tests.conftest import _recreate_database

        base = make_url(request.getfixturevalue("postgres_database"))
        name = f"{base.database}_series_mig"
        admin = base.set(database="postgres").render_as_string(hide_password=False)
        await _recreate_database(admin, name)
        url = base.set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(upgrade, Settings(database_url=url), BEFORE)
    return url


async def _insert_experiment(session: AsyncSession, name: str) -> int:
    await session.execute(
        text(
            "INSERT INTO experiments (user_id, project_id, uuid, name, created_at, updated_at,"
            " is_managed, stop_requested) VALUES (1, 1, :name, :name, :at, :at, false, false)"
        ),
        {"name": name, "at": START},
    )
    return int(
        await session.scalar(text("SELECT id FROM experiments WHERE name = :n"), {"n": name})
    )


async def _series_rows(session: AsyncSession, exp_id: int) -> list[tuple[Any, ...]]:
    rows = await session.execute(
        text(
            "SELECT name, level, bucket, points, step, value, high_step, high_value"
            " FROM metric_series WHERE experiment_id = :e ORDER BY name, level, bucket"
        ),
        {"e": exp_id},
    )
    return [tuple(row) for row in rows]


async def _heads(session: AsyncSession, exp_id: int) -> dict[str, int]:
    rows = await session.execute(
        text("SELECT name, points FROM metric_series_heads WHERE experiment_id = :e"), {"e": exp_id}
    )
    return {str(name): int(points) for name, points in rows.all()}


async def test_upgrade_copies_metrics_as_the_write_path_stores_them(old_database: str) -> None:
    engine = create_async_engine(old_database)
    points = _points()
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO users (username, password_hash, is_superuser, is_active, created_at)"
                " VALUES ('u', 'x', false, true, :at)"
            ),
            {"at": START},
        )
        await session.execute(
            text(
                "INSERT INTO projects (uuid, created_at, updated_at, user_id, name, is_public)"
                " VALUES ('p1', :at, :at, 1, 'p', true)"
            ),
            {"at": START},
        )
        old = await _insert_experiment(session, "old")
        for values, created in reversed(points):  # stored out of order: read by created_at
            await session.execute(
                text(
                    'INSERT INTO experiment_metrics (experiment_id, created_at, "values")'
                    " VALUES (:e, :at, :v)"
                ),
                {"e": old, "at": created, "v": json.dumps(values)},
            )
    await engine.dispose()

    await asyncio.to_thread(upgrade, Settings(database_url=old_database))
    engine = create_async_engine(old_database)
    async with AsyncSession(engine) as session, session.begin():
        new = await _insert_experiment(session, "new")
        await series.record(session, new, points[:100])  # in several writes, as a run does
        await series.record(session, new, points[100:101])
        await series.record(session, new, points[101:])
    async with AsyncSession(engine) as session:
        copied = await _series_rows(session, old)
        assert copied == await _series_rows(session, new)
        assert (
            await _heads(session, old)
            == await _heads(session, new)
            == {
                "": 600,
                "loss": 600,
                "acc": 200,
            }
        )
        assert {row[1] for row in copied} == {0, *TIER_LEVELS}
        # The bucket of points 256..511: its lowest is the last, its highest the spike.
        assert ("loss", 8, 1, 256, 5110.0, 1.0 / 512, 3000.0, 50.0) in copied
        # Without a step, a point's x is its position in the run.
        assert ("loss", 0, 599, 1, 599.0, 1.0 / 600, None, None) in copied
    await engine.dispose()

    await asyncio.to_thread(command.downgrade, alembic_config(old_database), BEFORE)
    engine = create_async_engine(old_database)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        kept = await conn.scalar(text("SELECT count(*) FROM experiment_metrics"))
    await engine.dispose()
    assert "metric_series" not in tables and "metric_series_heads" not in tables
    assert kept == 600
