"""The long-poll over a project's change feed: wait for events after a cursor, holding no
connection between polls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Event
from app.services.events import Cursor, read_events

MAX_WAIT = 30.0  # seconds; a larger `wait` is clamped
POLL_INTERVAL = 0.2


async def wait_for_events(
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    project_id: int,
    *,
    after: Cursor,
    limit: int,
    wait: float,
    gone: Callable[[], Awaitable[bool]],
) -> tuple[list[Event], Cursor]:
    """Events after `after`, waiting up to `wait` seconds for one (less when `gone` says the
    caller left), and the cursor to continue from."""
    # End the request's transaction now: a long-poll must hold no connection (nor, on SQLite,
    # the write lock that every transaction takes at BEGIN). Each poll has a session of its own.
    await session.commit()
    deadline = time.monotonic() + min(wait, MAX_WAIT)
    while True:
        async with maker() as poll:
            rows, nxt = await read_events(poll, project_id, after, limit)
            await poll.commit()
        if rows or time.monotonic() >= deadline or await gone():
            return rows, nxt
        await asyncio.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
