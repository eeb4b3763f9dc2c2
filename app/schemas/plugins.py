"""Tensorboard and notebook shapes (polyaxon-v0.md 4.2) plus the URL where each is served."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.schemas.common import OutSchema, Schema, Timestamp


class PluginStart(Schema):
    config: dict[str, Any] | None = Field(default=None, description="tensorboard/notebook spec")


class NotebookStop(Schema):
    commit: bool = Field(default=True, description="commit the notebook's work as a new version")


class PluginOut(OutSchema):
    id: int
    uuid: str
    name: str | None
    unique_name: str
    user: str
    description: str | None
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    last_status: str | None
    tags: list[str] | None
    project: str
    url: str | None


class TensorboardOut(PluginOut):
    # Ints here, unlike on experiments (polyaxon-cli-0.3.9.md 4.5, TensorboardJobSchema).
    experiment_group: int | None
    experiment: int | None


class NotebookOut(PluginOut):
    commit: str | None = Field(default=None, description="code version committed on stop")
    message: str | None = Field(
        default=None, description="its last status message: on a stop, what became of its work"
    )
