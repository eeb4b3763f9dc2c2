"""Change feed responses."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from app.models import Event
    from app.services.events import Cursor


class EventOut(BaseModel):
    id: int
    cursor: str
    kind: str  # created | deleted | status | metric
    object_type: str  # project | group | experiment | experiment_job | job | build
    object_id: int
    status: str | None
    data: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, row: Event) -> EventOut:
        return cls(
            id=row.id,
            cursor=f"{row.txid}-{row.id}",
            kind=row.kind,
            object_type=row.object_type,
            object_id=row.object_id,
            status=row.status,
            data=row.data,
            created_at=row.created_at,
        )


class EventPage(BaseModel):
    count: int
    next: str
    results: list[EventOut]

    @classmethod
    def of(cls, rows: list[Event], nxt: Cursor) -> EventPage:
        return cls(count=len(rows), next=str(nxt), results=[EventOut.of(row) for row in rows])
