"""Bodies of the status routes."""

from __future__ import annotations

from pydantic import Field

from app.schemas.common import Schema


class StatusCreate(Schema):
    status: str = Field(max_length=32)
    message: str | None = Field(default=None, max_length=10_000)
    traceback: str | None = Field(default=None, max_length=1_000_000)
