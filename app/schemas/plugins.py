"""Tensorboard and notebook shapes (polyaxon-v0.md 4.2) plus the URL where each is served."""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field

from app.kinds import NOTEBOOK, TENSORBOARD
from app.schemas.common import RunFields, Schema


class PluginStart(Schema):
    config: dict[str, Any] | None = Field(default=None, description="tensorboard/notebook spec")


class NotebookStop(Schema):
    commit: bool = Field(default=True, description="commit the notebook's work as a new version")


class PluginOut(RunFields):
    user: str
    url: str | None

    @classmethod
    def from_row(cls, row: Any, project: str, *, user: str, **extra: Any) -> Self:
        """`user`: the project's owner (v0 showed it for plugins); `extra`: the URL where it is
        served and what the row does not carry."""
        return cls(**cls.run_fields(row, project), user=user, **cls.row_fields(row), **extra)

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
