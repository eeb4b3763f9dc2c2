"""Change feed responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class EventOut(BaseModel):
    id: int
    cursor: str
    kind: str  # created | deleted | status | metric
    object_type: str  # project | group | experiment | experiment_job | job | build
    object_id: int
    status: str | None
    data: dict[str, Any] | None
    created_at: datetime


class EventPage(BaseModel):
    count: int
    next: str
    results: list[EventOut]
