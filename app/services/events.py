"""Reading the change feed without ever skipping an event.

Events are ordered by `(txid, id)` and the cursor is `"<txid>-<id>"` of the last event seen.

Why not just `id > cursor`? On Postgres two transactions draw ids from the sequence and may commit
in the other order: a reader could see id 11, advance past it, and only then see id 10 commit.
Instead of serialising every writer behind one advisory lock, the feed only exposes events of
transactions older than every transaction still in flight: `txid < xmin` of the reading
statement's snapshot. Every transaction below that horizon has ended (committed rows are visible,
aborted ones are gone), and every transaction that is running or not yet started has a txid at or
above it, hence after any cursor handed out. Writers never wait; a reader waits at most for the
oldest open write transaction. The price: one long write transaction delays the whole feed.

On SQLite there is one writer at a time (BEGIN IMMEDIATE), ids commit in order and `txid` is 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.dialects import is_postgres
from app.errors import BadRequest
from app.models import Event

_CURSOR = re.compile(r"^(\d{1,19})-(\d{1,19})$")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@dataclass(frozen=True, order=True)
class Cursor:
    txid: int = 0
    id: int = 0

    def __str__(self) -> str:
        return f"{self.txid}-{self.id}"


def parse_cursor(raw: str | None) -> Cursor:
    if raw is None or raw == "":
        return Cursor()
    match = _CURSOR.match(raw)
    if match is None:
        raise BadRequest(f"`after` is not a cursor: {raw[:64]!r} (expected `<txid>-<id>`).")
    txid, ident = int(match.group(1)), int(match.group(2))
    if txid >= 2**63 or ident >= 2**63:
        raise BadRequest("`after` is out of range.")
    return Cursor(txid, ident)


def _visible(session: AsyncSession) -> list[ColumnElement[bool]]:
    if not is_postgres(session):
        return []
    horizon: ColumnElement[int] = literal_column(
        "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
    )
    return [Event.txid < horizon]


def _query(session: AsyncSession, project_id: int, after: Cursor, limit: int) -> Select[Any]:
    return (
        select(Event)
        .where(
            Event.project_id == project_id,
            or_(
                Event.txid > after.txid,
                and_(Event.txid == after.txid, Event.id > after.id),
            ),
            *_visible(session),
        )
        .order_by(Event.txid, Event.id)
        .limit(limit)
    )


async def read_events(
    session: AsyncSession, project_id: int, after: Cursor, limit: int
) -> tuple[list[Event], Cursor]:
    """Events of a project after `after` (at most `limit`) and the cursor to continue from."""
    rows = list((await session.scalars(_query(session, project_id, after, limit))).all())
    nxt = Cursor(rows[-1].txid, rows[-1].id) if rows else after
    return rows, nxt
