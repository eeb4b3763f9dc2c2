"""Bodies and responses of the experiment routes, with their serialisers."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Self

from pydantic import Field

from app.kinds import BUILD, EXPERIMENT, GROUP, replica_unique_name
from app.schemas.common import (
    RUN_COLUMNS,
    BodyRowId,
    Description,
    OutSchema,
    RowContext,
    RunName,
    Schema,
    Tags,
    Timestamp,
    columns,
)

# The fields of the `?metrics=true` and `?declarations=true` list rows.
METRIC_FIELDS = ("id", "uuid", "name", "unique_name", "last_metric", "started_at", "finished_at")
DECLARATION_FIELDS = ("id", "uuid", "name", "unique_name", "declarations")


EXPERIMENT_COLUMNS = (*RUN_COLUMNS, "cloning_strategy", "last_metric", "declarations")
REPLICA_COLUMNS = (
    *("id", "uuid", "role", "last_status", "created_at", "updated_at"),
    *("started_at", "finished_at", "resources", "node_scheduled"),
)


@dataclass(frozen=True)
class ExperimentFilters:
    """The query parameters of an experiment list besides paging (`Depends()` reads them)."""

    metrics: bool = False  # rows narrowed to their identity and last metric
    declarations: bool = False  # rows narrowed to their identity and declarations
    group: int | None = None
    independent: bool = False

    @property
    def only(self) -> tuple[str, ...]:
        return METRIC_FIELDS if self.metrics else DECLARATION_FIELDS if self.declarations else ()


@dataclass(frozen=True)
class ExperimentFacts:
    """What an experiment's detail shows besides its own columns."""

    bookmarked: bool
    num_jobs: int
    has_tensorboard: bool
    original_group_id: int | None
    creator: str


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

    @classmethod
    def from_row(cls, row: Any, ctx: RowContext, only: Collection[str] = ()) -> Self:
        """`only`: the fields of a narrowed row (the others are absent, not null)."""
        values = cls.fields_of(row, ctx)
        return cls(**({k: values[k] for k in only} if only else values))

    @classmethod
    def fields_of(cls, row: Any, ctx: RowContext) -> dict[str, Any]:
        group, original, build = row.experiment_group_id, row.original_id, row.build_job_id
        original_group = ctx.original_groups.get(original) if original else None
        return {
            **columns(row, EXPERIMENT_COLUMNS),
            "unique_name": EXPERIMENT.unique_name(ctx.project, row.id, group),
            "user": ctx.usernames.get(row.user_id, ""),
            "original": (
                EXPERIMENT.unique_name(ctx.project, original, original_group) if original else None
            ),
            "project": ctx.project,
            "experiment_group": GROUP.unique_name(ctx.project, group) if group else None,
            "build_job": BUILD.unique_name(ctx.project, build) if build else None,
            "bookmarked": row.id in ctx.bookmarked,
        }


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

    @classmethod
    def from_facts(cls, row: Any, project: str, facts: ExperimentFacts) -> Self:
        ctx = RowContext(
            project,
            usernames={row.user_id: facts.creator},
            bookmarked={row.id} if facts.bookmarked else (),
            original_groups={row.original_id: facts.original_group_id} if row.original_id else {},
        )
        metric = row.last_metric
        return cls(
            **{
                **cls.fields_of(row, ctx),
                "last_metric": {k: round(v, 7) for k, v in metric.items()} if metric else metric,
            },
            **columns(row, ("readme", "config", "resources", "run_env", "data_refs", "is_managed")),
            num_jobs=facts.num_jobs,
            is_clone=row.original_id is not None,
            code_reference=row.code_reference_id,
            has_tensorboard=facts.has_tensorboard,
        )


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

    @classmethod
    def from_row(cls, row: Any, experiment_unique: str) -> Self:
        return cls(
            **columns(row, REPLICA_COLUMNS),
            unique_name=replica_unique_name(experiment_unique, row.id, row.role),
            experiment=row.experiment_id,
            **cls.detail_of(row),
        )

    @classmethod
    def detail_of(cls, row: Any) -> dict[str, Any]:
        return {}


class ExperimentJobDetailOut(ExperimentJobOut):
    definition: dict[str, Any] | None = None

    @classmethod
    def detail_of(cls, row: Any) -> dict[str, Any]:
        return {"definition": row.definition}


class MetricOut(OutSchema):
    """One metric point; `uuid` is derived from the id (polyaxon-client requires one)."""

    id: int
    uuid: str
    experiment: int
    created_at: Timestamp
    values: dict[str, float]
