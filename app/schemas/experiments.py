"""Bodies and responses of the experiment routes."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.schemas.common import (
    BodyRowId,
    Description,
    OutSchema,
    RunName,
    Schema,
    Tags,
    Timestamp,
)


def _tracking_only() -> dict[str, Any]:
    return {"version": 1, "kind": "experiment"}


class ExperimentCreate(Schema):
    # Absent or null: a tracking-only experiment (the tracking client's `create()` sends null).
    config: str | dict[str, Any] = Field(default_factory=_tracking_only)
    declarations: dict[str, Any] | None = None
    name: RunName | None = None
    description: Description | None = None
    tags: Tags | None = None
    experiment_group: BodyRowId | None = None
    run_env: dict[str, Any] | None = None  # the tracking client's `create()` sends it


class RunUpdate(Schema):
    name: RunName | None = None
    description: Description | None = None
    readme: Description | None = None
    tags: Tags | None = None
    declarations: dict[str, Any] | None = None
    run_env: dict[str, Any] | None = None  # experiments only (the in-cluster client sends it)
    data_refs: dict[str, Any] | None = None  # the tracking client's `log_data_ref`
    merge: bool = False  # tags, declarations and data_refs are merged instead of replaced


class CloneBody(Schema):
    config: dict[str, Any] | None = None
    description: Description | None = None
    update_code: bool | None = None


class IdsBody(Schema):
    ids: list[BodyRowId] = Field(max_length=10_000)


class ExperimentOut(OutSchema):
    """A list row (polyaxon-v0.md 4.2). `?metrics=true` / `?declarations=true` rows carry only
    the identity fields and `last_metric` / `declarations`: the other fields are then absent."""

    id: int
    uuid: str
    name: str | None
    unique_name: str
    user: str | None = None
    description: str | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    last_status: str | None = None
    original: str | None = None
    cloning_strategy: str | None = None
    project: str | None = None
    experiment_group: str | None = None
    build_job: str | None = None
    tags: list[str] | None = None
    last_metric: dict[str, Any] | None = None
    declarations: dict[str, Any] | None = None
    bookmarked: bool | None = None


class ExperimentDetailOut(ExperimentOut):
    readme: str | None = None
    config: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    run_env: dict[str, Any] | None = None
    data_refs: dict[str, Any] | None = None
    num_jobs: int | None = None
    is_clone: bool | None = None
    is_managed: bool | None = None
    code_reference: int | None = None
    has_tensorboard: bool | None = None


class ExperimentJobOut(OutSchema):
    """A replica of an experiment (role master/worker/ps)."""

    id: int
    uuid: str
    unique_name: str
    role: str
    experiment: int
    last_status: str | None
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    resources: dict[str, Any] | None
    node_scheduled: str | None


class ExperimentJobDetailOut(ExperimentJobOut):
    definition: dict[str, Any] | None = None


class MetricOut(OutSchema):
    """One metric point; `uuid` is derived from the id (polyaxon-client requires one)."""

    id: int
    uuid: str
    experiment: int
    created_at: Timestamp
    values: dict[str, float]
