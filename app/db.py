"""Async engine and sessions for SQLite (embedded default) and Postgres (production)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from app.config import Settings
from app.dialects import is_postgres
from app.services import principal_cache, statuses
from app.services.principal_cache import SESSION_KEY as PRINCIPAL_CACHE_KEY
from app.services.principal_cache import PrincipalCache


class AppSession(Session):
    """The sessions of the app's sessionmakers. The session events the app relies on (the status
    writer's commit hook and lock bookkeeping, the principal cache's invalidation) are registered
    on this class, not on SQLAlchemy's global `Session`: they run for the app's sessions only."""


class ReadOnlySession(AppSession):
    """A GET request's session on Postgres (make_read_sessionmaker): a flush is a bug and raises."""


# Once, at import: every sessionmaker below makes sessions of these classes.
statuses.register_session_events(AppSession)
principal_cache.register_session_events(AppSession)


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_writes_in_read_sessions(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a read-only (GET) request tried to write; use a POST/PATCH route")


def _setup_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while the reconciler writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    # SQLite ignores FOREIGN KEY clauses unless asked; we rely on ON DELETE CASCADE.
    cursor.execute("PRAGMA foreign_keys=ON")
    # Wait for a competing writer instead of failing at once with "database is locked".
    cursor.execute("PRAGMA busy_timeout=30000")
    # WAL + NORMAL is durable across application crashes (only an OS crash may lose the tail).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(conn) -> None:
    # Take the write lock at BEGIN so two writers never deadlock upgrading read locks.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _setup_sqlite)

        # pysqlite's own transaction handling is off; we emit BEGIN ourselves.
        @event.listens_for(engine.sync_engine, "connect")
        def _no_autobegin(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None

        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    # No pool_pre_ping: on asyncpg it costs two round trips (BEGIN; ROLLBACK) on every checkout,
    # about a fifth of a small request. A connection lost to a Postgres restart instead fails the
    # one request that meets it (503 + Retry-After, see app/errors.py) and SQLAlchemy invalidates
    # the pool, so the next request reconnects.
    return create_async_engine(url, pool_size=20, max_overflow=20)


def make_sessionmaker(
    engine: AsyncEngine, principal_cache: PrincipalCache | None = None
) -> async_sessionmaker[AsyncSession]:
    # Every session of the app sees the same cache (session.info is copied shallowly).
    info = {PRINCIPAL_CACHE_KEY: principal_cache} if principal_cache is not None else None
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, info=info, sync_session_class=AppSession
    )


def make_read_sessionmaker(
    engine: AsyncEngine, principal_cache: PrincipalCache | None = None
) -> async_sessionmaker[AsyncSession] | None:
    """Sessions for requests that only read (GET), on Postgres: autocommit, so a read costs no
    BEGIN and COMMIT round trips (two of a detail's four). Each statement sees its own snapshot,
    which a page and its count tolerate. A flush in such a session is a bug and raises. SQLite
    keeps one kind of session: its transactions are local calls, not round trips."""
    if not is_postgres(engine):
        return None
    info = {PRINCIPAL_CACHE_KEY: principal_cache} if principal_cache is not None else None
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(
        autocommit,
        expire_on_commit=False,
        autoflush=False,
        info=info,
        sync_session_class=ReadOnlySession,
    )


@asynccontextmanager
async def session_scope(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
