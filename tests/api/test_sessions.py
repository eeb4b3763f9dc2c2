"""Which session a request gets: GETs on Postgres read in autocommit and may not write."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from app.models import Project


async def test_reads_on_postgres_run_without_a_transaction(backend: str, app: Any) -> None:
    reader = app.state.read_sessionmaker
    if backend == "sqlite":
        assert reader is None  # one kind of session: SQLite transactions cost no round trips
        return
    async with reader() as session:
        # Outside a transaction block every statement gets its own transaction id.
        first = await session.scalar(text("SELECT txid_current()"))
        second = await session.scalar(text("SELECT txid_current()"))
        assert first != second


async def test_a_read_session_refuses_to_write(backend: str, app: Any, owner: Any) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has no read-only sessions")
    async with app.state.read_sessionmaker() as session:
        session.add(Project(user_id=owner.id, name="sneaky"))
        with pytest.raises(RuntimeError, match="read-only"):
            await session.flush()


async def test_get_routes_answer_from_the_read_session(
    backend: str, client: Any, owner: Any
) -> None:
    r = await client.post("/api/v1/projects", json={"name": "seen"}, headers=owner.headers)
    assert r.status_code == 201
    r = await client.get(f"/api/v1/{owner.username}/seen", headers=owner.headers)
    assert r.status_code == 200 and r.json()["name"] == "seen"
    r = await client.get(f"/api/v1/{owner.username}", headers=owner.headers)
    assert r.json()["count"] == 1
