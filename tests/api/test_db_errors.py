"""Database trouble answers 503 + Retry-After, never 500, and the server recovers by itself."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.errors import is_transient_db_error


class _Orig(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("boom")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "invalidated", "transient"),
    [("40P01", False, True), ("40001", False, True), ("57P01", False, True),
     (None, True, True), ("42601", False, False), (None, False, False)],
)
def test_transient_errors_are_told_from_bugs(
    sqlstate: str | None, invalidated: bool, transient: bool
) -> None:
    exc = DBAPIError("SELECT 1", {}, _Orig(sqlstate), connection_invalidated=invalidated)
    assert is_transient_db_error(exc) is transient


async def test_connections_killed_by_a_postgres_restart_heal(
    backend: str, database_url: str, client: Any, owner: Any
) -> None:
    if backend != "postgres":
        pytest.skip("needs Postgres backends to terminate")
    assert (await client.get("/api/v1/users", headers=owner.headers)).status_code == 200
    killer = create_async_engine(database_url)
    async with killer.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    await killer.dispose()
    # The pooled connection is dead: at most one request meets it, and it is told to retry.
    first = await client.post("/api/v1/projects", json={"name": "after"}, headers=owner.headers)
    assert first.status_code in {201, 503}, first.text
    if first.status_code == 503:
        assert first.headers["Retry-After"] == "1"
        first = await client.post(
            "/api/v1/projects", json={"name": "after"}, headers=owner.headers
        )
    assert first.status_code == 201, first.text
    r = await client.get(f"/api/v1/{owner.username}/after", headers=owner.headers)
    assert r.status_code == 200
