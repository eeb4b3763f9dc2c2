"""Experiment group bodies and resources (seed 001, polyaxon-v0.md 4.2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Self, TypeVar

from pydantic import AliasChoices, BaseModel, Field

from app.kinds import GROUP
from app.logic.sweep_plan import SweepPlan
from app.models import ExperimentGroup
from app.schemas.common import Description, OutSchema, Page, RunName, Schema, Tags, Timestamp

Row = TypeVar("Row")
Out = TypeVar("Out")

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

    @classmethod
    def from_row(cls, group: ExperimentGroup, facts: Mapping[str, Any]) -> Self:
        """The row's columns, with what it does not hold (names, bookmark, counters) from
        `facts` (app.services.groups.describe_groups / describe_group_detail)."""
        names = cls.model_fields.keys() - facts.keys() - {"unique_name"}
        unique = GROUP.unique_name(facts["project"], group.id)
        return cls.model_validate(
            {**{name: getattr(group, name) for name in names}, **facts, "unique_name": unique}
        )


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
    experiment_group: int = Field(
        validation_alias=AliasChoices("experiment_group_id", "experiment_group")
    )


class GroupDecisionOut(OutSchema):
    id: int
    experiment_group: int = Field(
        validation_alias=AliasChoices("experiment_group_id", "experiment_group")
    )
    kind: str
    reason: str
    experiment_ids: list[int] | None
    inputs: dict[str, Any] | None
    created_at: Timestamp


class GroupMetricOut(OutSchema):
    id: int
    experiment: int = Field(validation_alias=AliasChoices("experiment_id", "experiment"))
    created_at: Timestamp
    values: dict[str, Any]


class SweepPlanOut(BaseModel):
    search_algorithm: str
    space_size: int | None
    num_experiments: int
    iterations: list[int]
    concurrency: int
    warnings: list[str]

    @classmethod
    def from_plan(cls, plan: SweepPlan, *, concurrency: int) -> Self:
        return cls(
            search_algorithm=plan.algorithm,
            space_size=plan.space_size,
            num_experiments=plan.total_experiments,
            iterations=list(plan.iterations),
            concurrency=concurrency,
            warnings=list(plan.warnings),
        )


class GroupPointOut(BaseModel):
    id: int
    status: str | None
    declarations: dict[str, Any]
    metric: float | None
    iteration: int | None  # the search's iteration (hyperband: one per bracket and rung)
    original: int | None  # a promoted trial's parent, in the rung below


class RungOut(BaseModel):
    iteration: int
    bracket: int
    rung: int
    n_configs: int
    resource: float


class GroupPointsOut(BaseModel):
    count: int
    metric: str | None
    results: list[GroupPointOut]
    rungs: list[RungOut]  # hyperband's schedule; empty for other searches


def page_of(
    listed: tuple[int, list[Row], str | None, str | None], build: Callable[[Row], Out]
) -> Page[Out]:
    """A list envelope of the page `listed` (app.services.listing.paginate), each row built."""
    count, rows, next_url, previous = listed
    return Page(count=count, next=next_url, previous=previous, results=[build(r) for r in rows])
