"""Bodies and responses of the status routes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.schemas.common import OutSchema, Schema, Timestamp


class StatusCreate(Schema):
    status: str = Field(max_length=32)
    message: str | None = Field(default=None, max_length=10_000)
    traceback: str | None = Field(default=None, max_length=1_000_000)


class _StatusOut(OutSchema):
    id: int
    uuid: str
    created_at: Timestamp
    message: str | None
    traceback: str | None
    status: str


class ExperimentStatusOut(_StatusOut):
    """A row of an experiment's status history."""

    experiment: int


class JobStatusOut(_StatusOut):
    """A row of a job's, build's or replica's status history."""

    job: int
    details: dict[str, Any] | None = None
