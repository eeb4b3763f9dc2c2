"""Bodies and responses of the project routes, with their serialisers."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel

from app.kinds import project_unique_name
from app.schemas.common import (
    Description,
    OutSchema,
    ProjectName,
    Schema,
    Tags,
    Timestamp,
    columns,
)


class ProjectCreate(Schema):
    name: ProjectName
    description: Description | None = None
    readme: Description | None = None
    is_public: bool | None = None  # unset or null: PLX_DEFAULT_PROJECT_VISIBILITY
    tags: Tags | None = None


class ProjectUpdate(Schema):
    name: ProjectName | None = None
    description: Description | None = None
    readme: Description | None = None
    is_public: bool | None = None
    tags: Tags | None = None
    merge: bool = False  # tags are merged instead of replaced


PROJECT_COLUMNS = (
    "id",
    "uuid",
    "name",
    "description",
    "tags",
    "created_at",
    "updated_at",
    "is_public",
)


class ProjectOut(OutSchema):
    id: int
    uuid: str
    user: str
    name: str
    unique_name: str
    description: str | None
    tags: list[str] | None
    created_at: Timestamp
    updated_at: Timestamp
    is_public: bool
    bookmarked: bool = False

    @classmethod
    def from_row(cls, project: Any, owner: Any, *, bookmarked: bool, **extra: Any) -> Self:
        """`extra`: the detail's counters."""
        return cls(
            **columns(project, PROJECT_COLUMNS),
            user=owner.username,
            unique_name=project_unique_name(owner.username, project.name),
            bookmarked=bookmarked,
            **extra,
        )


class ProjectDetailOut(ProjectOut):
    readme: str | None
    has_code: bool
    has_tensorboard: bool
    has_notebook: bool
    num_experiment_groups: int
    num_independent_experiments: int
    num_experiments: int
    num_jobs: int
    num_builds: int


class BookmarkOut(BaseModel):
    content_object: dict[str, Any]
