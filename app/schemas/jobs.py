"""Bodies and responses of the job and build routes, with their serialisers."""

from __future__ import annotations

from typing import Any, Self

from app.kinds import BUILD, JOB
from app.schemas.common import Description, RowContext, RunFields, RunName, Schema, Tags, columns


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


class RunOut(RunFields):
    """A job's or build's list row."""

    bookmarked: bool

    @classmethod
    def from_row(cls, row: Any, ctx: RowContext, **extra: Any) -> Self:
        """`extra`: the fields the row does not carry (a build's counters)."""
        return cls(**cls.fields_of(row, ctx), **extra)

    @classmethod
    def fields_of(cls, row: Any, ctx: RowContext) -> dict[str, Any]:
        return {
            **cls.run_fields(row, ctx.project),
            "user": ctx.usernames.get(row.user_id),
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


# The detail fields jobs and builds share.
SPEC_COLUMNS = ("readme", "config", "resources", "node_scheduled")


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
            **columns(row, SPEC_COLUMNS),
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
            **columns(row, SPEC_COLUMNS),
            **columns(row, ("dockerfile", "commit")),
        }
