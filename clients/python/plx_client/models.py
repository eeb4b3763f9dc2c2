"""Response models, field for field as plx's OpenAPI declares them (tests/test_models.py checks).

Unknown fields are kept (`extra="allow"`), so a newer server never breaks an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class PlxModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class User(PlxModel):
    id: int
    username: str
    email: str | None = None
    is_superuser: bool
    is_staff: bool = False
    created_at: datetime


class Project(PlxModel):
    id: int
    uuid: str
    user: str
    name: str
    unique_name: str
    description: str | None = None
    tags: list[str] | None = None
    created_at: datetime
    updated_at: datetime
    is_public: bool
    bookmarked: bool = False


class ProjectDetail(Project):
    readme: str | None = None
    has_code: bool
    has_tensorboard: bool
    has_notebook: bool
    num_experiment_groups: int
    num_independent_experiments: int
    num_experiments: int
    num_jobs: int
    num_builds: int


class CodeReference(PlxModel):
    id: int
    commit: str
    size_bytes: int
    num_files: int
    created_at: datetime


class Repo(PlxModel):
    project: str
    has_code: bool
    commit: str | None = None
    current: CodeReference | None = None
    versions: list[CodeReference]


class Experiment(PlxModel):
    id: int
    uuid: str
    name: str | None = None
    unique_name: str
    user: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
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


class ExperimentDetail(Experiment):
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


class ExperimentJob(PlxModel):
    id: int
    uuid: str
    unique_name: str
    role: str
    experiment: int
    last_status: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    resources: dict[str, Any] | None = None
    node_scheduled: str | None = None


class Metric(PlxModel):
    id: int
    uuid: str
    experiment: int
    created_at: datetime
    values: dict[str, float]


class Status(PlxModel):
    id: int
    uuid: str
    created_at: datetime
    message: str | None = None
    traceback: str | None = None
    status: str


class ExperimentStatus(Status):
    experiment: int


class JobStatus(Status):
    job: int
    details: dict[str, Any] | None = None


class _Run(PlxModel):
    id: int
    uuid: str
    name: str | None = None
    unique_name: str
    user: str | None = None
    description: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_status: str | None = None
    tags: list[str] | None = None
    project: str
    bookmarked: bool


class Job(_Run):
    build_job: str | None = None


class JobDetail(Job):
    readme: str | None = None
    config: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    node_scheduled: str | None = None
    is_clone: bool
    data_refs: dict[str, Any] | None = None
    original: str | None = None


class Build(_Run):
    pass


class BuildDetail(Build):
    readme: str | None = None
    config: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    node_scheduled: str | None = None
    dockerfile: str | None = None
    commit: str | None = None
    num_jobs: int
    num_experiments: int


class Group(PlxModel):
    id: int
    uuid: str
    name: str | None = None
    unique_name: str
    user: str
    description: str | None = None
    last_status: str | None = None
    group_type: str
    project: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    tags: list[str] | None = None
    concurrency: int | None = None
    search_algorithm: str | None = None
    bookmarked: bool = False


class GroupDetail(Group):
    readme: str | None = None
    current_iteration: int
    content: str | None = None
    hptuning: dict[str, Any] | None = None
    has_tensorboard: bool | None = None
    num_experiments: int
    num_pending_experiments: int
    num_running_experiments: int
    num_scheduled_experiments: int
    num_succeeded_experiments: int
    num_failed_experiments: int
    num_stopped_experiments: int


class GroupStatus(Status):
    experiment_group: int


class GroupDecision(PlxModel):
    """Why a sweep stopped experiments (early stopping) or itself, with the inputs it used."""

    id: int
    experiment_group: int
    kind: str
    reason: str
    experiment_ids: list[int] | None = None
    inputs: dict[str, Any] | None = None
    created_at: datetime


class GroupMetric(PlxModel):
    id: int
    experiment: int
    created_at: datetime
    values: dict[str, Any]


class SweepPlan(PlxModel):
    search_algorithm: str
    space_size: int | None = None
    num_experiments: int
    iterations: list[int]
    concurrency: int
    warnings: list[str]


class _Plugin(PlxModel):
    id: int
    uuid: str
    name: str | None = None
    unique_name: str
    user: str
    description: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_status: str | None = None
    tags: list[str] | None = None
    project: str
    url: str | None = None


class Tensorboard(_Plugin):
    experiment_group: int | None = None
    experiment: int | None = None


class Notebook(_Plugin):
    commit: str | None = None
    message: str | None = None  # its last status message: on a stop, what became of its work


class Series(PlxModel):
    name: str
    count: int  # points of this series in the range, before downsampling
    x: list[float]
    y: list[float]


class ExperimentSeries(PlxModel):
    """An experiment's metric series, downsampled by plx (for plotting)."""

    experiment: int
    axis: str  # "step" or "time"
    total: int
    series: list[Series]


class GroupPoint(PlxModel):
    id: int
    status: str | None = None
    declarations: dict[str, Any]
    metric: float | None = None
    iteration: int | None = None
    original: int | None = None


class Rung(PlxModel):
    iteration: int
    bracket: int
    rung: int
    n_configs: int
    resource: float


class GroupPoints(PlxModel):
    """A group's experiments as points (params and one metric), and hyperband's rungs."""

    count: int
    metric: str | None = None
    results: list[GroupPoint]
    rungs: list[Rung]


# A run in one of these statuses will not change any more (plx's app/logic/statuses.py DONE).
DONE_STATUSES = frozenset({"succeeded", "failed", "stopped"})
