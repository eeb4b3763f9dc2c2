"""Bodies and responses of the job and build routes, with their serialisers."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from app.kinds import BUILD, JOB, RunKind
from app.schemas.common import (
    Description,
    OutSchema,
    RowContext,
    RunName,
    Schema,
    Tags,
    Timestamp,
)


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


class RunOut(OutSchema):
    """The list fields jobs, builds (and the rows bookmarks show) have in common."""

    kind: ClassVar[RunKind]

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

    @classmethod
    def from_row(cls, row: Any, ctx: RowContext, **extra: Any) -> Self:
        """`extra`: the fields the row does not carry (a build's counters)."""
        return cls(**cls.fields_of(row, ctx), **extra)

    @classmethod
    def fields_of(cls, row: Any, ctx: RowContext) -> dict[str, Any]:
        return {
            "id": row.id,
            "uuid": row.uuid,
            "name": row.name,
            "unique_name": cls.kind.unique_name(ctx.project, row.id),
            "user": ctx.usernames.get(row.user_id),
            "description": row.description,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "last_status": row.last_status,
            "tags": row.tags,
            "project": ctx.project,
            "bookmarked": row.id in ctx.bookmarked,
        }


class JobOut(RunOut):
    """A job list row (polyaxon-v0.md 4.2)."""

    kind = JOB
    build_job: str | None

    @classmethod
    def fields_of(cls, row: Any, ctx: RowContext) -> dict[str, Any]:
        build = row.build_job_id
        build_job = BUILD.unique_name(ctx.project, build) if build else None
        return {**super().fields_of(row, ctx), "build_job": build_job}


def _spec_of(row: Any) -> dict[str, Any]:
    """The detail fields jobs and builds share."""
    return {
        "readme": row.readme,
        "config": row.config,
        "resources": row.resources,
        "node_scheduled": row.node_scheduled,
    }


class JobDetailOut(JobOut):
    readme: str | None
    config: dict[str, Any] | None
    resources: dict[str, Any] | None
    node_scheduled: str | None
    is_clone: bool
    data_refs: dict[str, Any] | None
    original: str | None

    @classmethod
    def fields_of(cls, row: Any, ctx: RowContext) -> dict[str, Any]:
        original = JOB.unique_name(ctx.project, row.original_id) if row.original_id else None
        return {
            **super().fields_of(row, ctx),
            **_spec_of(row),
            "is_clone": row.original_id is not None,
            "data_refs": row.data_refs,
            "original": original,
        }


class BuildOut(RunOut):
    """A build list row (polyaxon-v0.md 4.2)."""

    kind = BUILD


class BuildDetailOut(BuildOut):
    readme: str | None
    config: dict[str, Any] | None
    resources: dict[str, Any] | None
    node_scheduled: str | None
    dockerfile: str | None
    commit: str | None
    num_jobs: int
    num_experiments: int

    @classmethod
    def fields_of(cls, row: Any, ctx: RowContext) -> dict[str, Any]:
        return {
            **super().fields_of(row, ctx),
            **_spec_of(row),
            "dockerfile": row.dockerfile,
            "commit": row.commit,
        }
