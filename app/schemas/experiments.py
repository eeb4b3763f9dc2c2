"""Bodies of the experiment routes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.schemas.common import Description, RunName, Schema, Tags


class ExperimentCreate(Schema):
    config: str | dict[str, Any]
    declarations: dict[str, Any] | None = None
    name: RunName | None = None
    description: Description | None = None
    tags: Tags | None = None
    experiment_group: int | None = None


class RunUpdate(Schema):
    name: RunName | None = None
    description: Description | None = None
    readme: Description | None = None
    tags: Tags | None = None
    declarations: dict[str, Any] | None = None
    merge: bool = False


class CloneBody(Schema):
    config: dict[str, Any] | None = None
    description: Description | None = None
    update_code: bool | None = None


class IdsBody(Schema):
    ids: list[int] = Field(max_length=10_000)
