"""Experiment group bodies and resources (seed 001, polyaxon-v0.md 4.2)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from app.schemas.common import Description, OutSchema, RunName, Schema, Tags, Timestamp

# The polyaxonfile: YAML text as the v0 CLI sent it, or an already-parsed object.
Content = Annotated[str, Field(min_length=1, max_length=1_000_000)] | dict[str, Any]


class GroupCreate(Schema):
    content: Content
    name: RunName | None = None
    description: Description | None = None
    readme: Description | None = None
    tags: Tags | None = None


class GroupUpdate(Schema):
    name: RunName | None = None
    description: Description | None = None
    readme: Description | None = None
    tags: Tags | None = None
    concurrency: Annotated[int, Field(ge=1)] | None = None
    content: Content | None = None
    merge: bool = False  # tags are merged instead of replaced


class GroupStop(Schema):
    pending: bool = False


class GroupOut(OutSchema):
    id: int
    uuid: str
    name: str | None
    unique_name: str
    user: str
    description: str | None
    last_status: str | None
    group_type: str
    project: str
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    tags: list[str] | None
    concurrency: int | None
    search_algorithm: str | None
    bookmarked: bool = False


class GroupDetailOut(GroupOut):
    readme: str | None
    current_iteration: int
    content: str | None
    hptuning: dict[str, Any] | None
    has_tensorboard: bool | None
    num_experiments: int
    num_pending_experiments: int
    num_running_experiments: int
    num_scheduled_experiments: int
    num_succeeded_experiments: int
    num_failed_experiments: int
    num_stopped_experiments: int


class GroupStatusOut(OutSchema):
    id: int
    uuid: str
    created_at: Timestamp
    message: str | None
    traceback: str | None
    status: str
    experiment_group: int


class GroupDecisionOut(OutSchema):
    id: int
    experiment_group: int
    kind: str
    reason: str
    experiment_ids: list[int] | None
    inputs: dict[str, Any] | None
    created_at: Timestamp


class GroupMetricOut(OutSchema):
    id: int
    experiment: int
    created_at: Timestamp
    values: dict[str, Any]


class SweepPlanOut(BaseModel):
    search_algorithm: str
    space_size: int | None
    num_experiments: int
    iterations: list[int]
    concurrency: int
    warnings: list[str]
