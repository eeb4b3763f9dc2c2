"""Bodies of the job and build routes."""

from __future__ import annotations

from typing import Any

from app.schemas.common import Description, RunName, Schema, Tags


class JobCreate(Schema):
    config: str | dict[str, Any]
    name: RunName | None = None
    description: Description | None = None
    tags: Tags | None = None


class JobUpdate(Schema):
    name: RunName | None = None
    description: Description | None = None
    readme: Description | None = None
    tags: Tags | None = None
    merge: bool = False
