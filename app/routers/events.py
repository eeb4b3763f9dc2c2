"""GET /api/v1/{username}/{project}/events: the project's change feed, with long-polling."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.deps import ProjectRead, SessionDep
from app.schemas.events import EventPage
from app.services.event_feed import MAX_WAIT, wait_for_events
from app.services.events import DEFAULT_LIMIT, MAX_LIMIT, Cursor, parse_cursor

router = APIRouter(prefix="/api/v1/{username}/{project}", tags=["events"])


async def after_cursor(
    after: Annotated[str | None, Query(max_length=64, description="cursor from `next`")] = None,
) -> Cursor:
    return parse_cursor(after)


@router.get("/events", response_model=EventPage, summary="Changes after a cursor (long-poll)")
async def list_events(
    request: Request,
    after: Annotated[Cursor, Depends(after_cursor)],  # a bad cursor is a 400 before the 404
    session: SessionDep,
    access: ProjectRead,
    wait: Annotated[
        float, Query(ge=0, description=f"seconds to wait for an event (at most {MAX_WAIT:g})")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> EventPage:
    maker = request.app.state.sessionmaker
    rows, nxt = await wait_for_events(
        session,
        maker,
        access.project.id,
        after=after,
        limit=limit,
        wait=wait,
        gone=request.is_disconnected,
    )
    return EventPage.of(rows, nxt)
