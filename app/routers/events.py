"""GET /api/v1/{username}/{project}/events: the project's change feed, with long-polling."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.deps import AuthDep, SessionDep
from app.schemas.events import EventOut, EventPage
from app.services.events import DEFAULT_LIMIT, MAX_LIMIT, parse_cursor, read_events
from app.services.projects import get_project

router = APIRouter(prefix="/api/v1/{username}/{project}", tags=["events"])

MAX_WAIT = 30.0  # seconds; a larger `wait` is clamped
POLL_INTERVAL = 0.2


@router.get("/events", response_model=EventPage, summary="Changes after a cursor (long-poll)")
async def list_events(
    request: Request,
    username: str,
    project: str,
    session: SessionDep,
    principal: AuthDep,
    after: Annotated[str | None, Query(max_length=64, description="cursor from `next`")] = None,
    wait: Annotated[
        float, Query(ge=0, description=f"seconds to wait for an event (at most {MAX_WAIT:g})")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> EventPage:
    cursor = parse_cursor(after)
    access = await get_project(session, principal, username, project)
    project_id = access.project.id
    # End the request's transaction now: a long-poll must hold no connection (nor, on SQLite,
    # the write lock that every transaction takes at BEGIN).
    await session.commit()
    deadline = time.monotonic() + min(wait, MAX_WAIT)
    maker = request.app.state.sessionmaker
    while True:
        async with maker() as poll:
            rows, nxt = await read_events(poll, project_id, cursor, limit)
            await poll.commit()
        if rows or time.monotonic() >= deadline or await request.is_disconnected():
            break
        await asyncio.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
    results = [
        EventOut(
            id=row.id,
            cursor=f"{row.txid}-{row.id}",
            kind=row.kind,
            object_type=row.object_type,
            object_id=row.object_id,
            status=row.status,
            data=row.data,
            created_at=row.created_at,
        )
        for row in rows
    ]
    return EventPage(count=len(results), next=str(nxt), results=results)
