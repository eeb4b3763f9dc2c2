"""Tensorboard and notebook shapes (polyaxon-v0.md 4.2) plus the URL where each is served."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import Field

from app.kinds import NOTEBOOK, TENSORBOARD, RunKind
from app.schemas.common import OutSchema, Schema, Timestamp


class PluginStart(Schema):
    config: dict[str, Any] | None = Field(default=None, description="tensorboard/notebook spec")


class NotebookStop(Schema):
    commit: bool = Field(default=True, description="commit the notebook's work as a new version")


class PluginOut(OutSchema):
    kind: ClassVar[RunKind]

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

    @classmethod
    def from_row(cls, row: Any, project: str, *, user: str, **extra: Any) -> Self:
        """`user`: the project's owner (v0 showed it for plugins); `extra`: the URL where it is
        served and what the row does not carry."""
        return cls(
            id=row.id,
            uuid=row.uuid,
            name=row.name,
            unique_name=cls.kind.unique_name(project, row.id),
            user=user,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            last_status=row.last_status,
            tags=row.tags,
            project=project,
            **cls.row_fields(row),
            **extra,
        )

    @classmethod
    def row_fields(cls, row: Any) -> dict[str, Any]:
        return {}


class TensorboardOut(PluginOut):
    kind = TENSORBOARD
    # Ints here, unlike on experiments (polyaxon-cli-0.3.9.md 4.5, TensorboardJobSchema).
    experiment_group: int | None
    experiment: int | None

    @classmethod
    def row_fields(cls, row: Any) -> dict[str, Any]:
        return {"experiment_group": row.experiment_group_id, "experiment": row.experiment_id}


class NotebookOut(PluginOut):
    kind = NOTEBOOK
    commit: str | None = Field(default=None, description="code version committed on stop")
    message: str | None = Field(
        default=None, description="its last status message: on a stop, what became of its work"
    )
