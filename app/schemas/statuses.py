"""Bodies and responses of the status routes."""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field

from app.kinds import RunKind
from app.schemas.common import OutSchema, Schema, Timestamp, columns


class StatusCreate(Schema):
    status: str = Field(max_length=32)
    message: str | None = Field(default=None, max_length=10_000)
    traceback: str | None = Field(default=None, max_length=1_000_000)


STATUS_COLUMNS = ("id", "uuid", "created_at", "message", "traceback", "status")


class StatusOut(OutSchema):
    id: int
    uuid: str
    created_at: Timestamp
    message: str | None
    traceback: str | None
    status: str

    @classmethod
    def from_row(cls, row: Any) -> Self:
        return cls(**columns(row, STATUS_COLUMNS), **cls.run_fields(row))

    @classmethod
    def run_fields(cls, row: Any) -> dict[str, Any]:
        """The fields naming the run the history row belongs to."""
        raise NotImplementedError


class ExperimentStatusOut(StatusOut):
    """A row of an experiment's status history."""

    experiment: int

    @classmethod
    def run_fields(cls, row: Any) -> dict[str, Any]:
        return {"experiment": row.experiment_id}


class JobStatusOut(StatusOut):
    """A row of a job's, build's or replica's status history."""

    job: int
    details: dict[str, Any] | None = None

    @classmethod
    def run_fields(cls, row: Any) -> dict[str, Any]:
        return {"job": row.job_id, "details": getattr(row, "details", None)}


def status_out_for(kind: RunKind) -> type[StatusOut]:
    return ExperimentStatusOut if kind.status_table == "experiment" else JobStatusOut
