"""Where SQLite and Postgres differ, in one module (as prefect keeps its dialect-specific query
pieces): callers ask these helpers instead of testing the dialect's name themselves."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

POSTGRES = "postgresql"


def dialect_name(bind: AsyncSession | AsyncConnection) -> str:
    """`postgresql` or `sqlite`, for a session or a connection."""
    if isinstance(bind, AsyncSession):
        return bind.get_bind().dialect.name
    return bind.dialect.name


def is_postgres(bind: AsyncSession | AsyncConnection) -> bool:
    return dialect_name(bind) == POSTGRES


def upsert(bind: AsyncSession | AsyncConnection, model: type) -> Any:
    """An INSERT that takes `on_conflict_do_nothing` / `on_conflict_do_update` on both."""
    if is_postgres(bind):
        return postgresql.insert(model)
    return sqlite.insert(model)
