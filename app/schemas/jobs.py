"""Bodies and responses of the job and build routes."""

from __future__ import annotations

from typing import Any

from app.schemas.common import Description, OutSchema, RunName, Schema, Tags, Timestamp


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
    data_refs: dict[str, Any] | None = None  # jobs only (the tracking client's `log_data_ref`)
    merge: bool = False


class _RunOut(OutSchema):
    id: int
    uuid: str
    name: str | None
    unique_name: str
    user: str | None
    description: str | None
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    last_status: str | None
    tags: list[str] | None
    project: str
    bookmarked: bool


class JobOut(_RunOut):
    """A job list row (polyaxon-v0.md 4.2)."""

    build_job: str | None


class JobDetailOut(JobOut):
    readme: str | None
    config: dict[str, Any] | None
    resources: dict[str, Any] | None
    node_scheduled: str | None
    is_clone: bool
    data_refs: dict[str, Any] | None
    original: str | None


class BuildOut(_RunOut):
    """A build list row (polyaxon-v0.md 4.2)."""


class BuildDetailOut(BuildOut):
    readme: str | None
    config: dict[str, Any] | None
    resources: dict[str, Any] | None
    node_scheduled: str | None
    dockerfile: str | None
    commit: str | None
    num_jobs: int
    num_experiments: int
