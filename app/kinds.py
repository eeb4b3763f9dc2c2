"""The kinds of run, one frozen description each (issue #17): everything that differs between an
experiment, an experiment's job (replica), a job, a build, a tensorboard and a notebook, and the
group, whose status history works like a run's. Routers, serialisers, the status writer, bookmarks
and the reconciler derive their maps from `KINDS` instead of keeping their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app import models as m
from app.logic.statuses import StatusTable


class Kind(StrEnum):
    """The name of a kind, as stored in `Token.run_kind` and used in log paths and events."""

    EXPERIMENT = "experiment"
    EXPERIMENT_JOB = "experiment_job"
    JOB = "job"
    BUILD = "build"
    TENSORBOARD = "tensorboard"
    NOTEBOOK = "notebook"
    GROUP = "group"


@dataclass(frozen=True)
class RunKind:
    kind: Kind
    model: type[Any]
    status_model: type[Any]  # the status history table
    status_fk: str  # the history table's column pointing at the run
    status_table: StatusTable  # which transition rules apply (app.logic.statuses)
    segment: str | None  # the URL segment under /{username}/{project}/, None when nested
    bookmark: str | None  # Bookmark.content_type, None when it cannot be bookmarked
    unique_infix: str | None  # `{project}.{infix}.{id}`; None: `{project}[.{group}].{id}`
    workload: bool = True  # the reconciler starts a workload for it
    id_param: str = "run_id"  # the path parameter naming one run under `segment`
    stop_message: str = "Stopped on request."  # the status message of a stop asked for
    clones: tuple[str, ...] = ()  # the cloning strategies its routes offer (restart, ...)
    self_update: bool = False  # its own run token may update it (the tracking client)

    @property
    def label(self) -> str:
        """How summaries name one of it ("a job", "an experiment")."""
        return str(self.kind.value)

    def unique_name(self, project_unique: str, run_id: int, group_id: int | None = None) -> str:
        if self.unique_infix is not None:
            return f"{project_unique}.{self.unique_infix}.{run_id}"
        if group_id is not None:
            return f"{project_unique}.{group_id}.{run_id}"
        return f"{project_unique}.{run_id}"


EXPERIMENT = RunKind(
    Kind.EXPERIMENT, m.Experiment, m.ExperimentStatus, "experiment_id", "experiment",
    "experiments", "experiment", None, id_param="exp_id",
    stop_message="m.Experiment was stopped.", clones=("restart", "resume", "copy"),
    self_update=True,
)  # fmt: skip
EXPERIMENT_JOB = RunKind(
    Kind.EXPERIMENT_JOB, m.ExperimentJob, m.ExperimentJobStatus, "job_id", "job",
    None, None, None, workload=False,
)  # fmt: skip
JOB = RunKind(
    Kind.JOB, m.Job, m.JobStatus, "job_id", "job", "jobs", "job", "jobs", clones=("restart",),
)  # fmt: skip
BUILD = RunKind(
    Kind.BUILD, m.BuildJob, m.BuildJobStatus, "job_id", "job", "builds", "build", "builds"
)
TENSORBOARD = RunKind(
    Kind.TENSORBOARD, m.TensorboardJob, m.TensorboardJobStatus, "job_id", "job",
    "tensorboards", None, "tensorboards",
)  # fmt: skip
NOTEBOOK = RunKind(
    Kind.NOTEBOOK, m.NotebookJob, m.NotebookJobStatus, "job_id", "job",
    "notebooks", None, "notebooks",
)  # fmt: skip
GROUP = RunKind(
    Kind.GROUP, m.ExperimentGroup, m.ExperimentGroupStatus, "experiment_group_id", "group",
    "groups", "experiment_group", None, workload=False,
)  # fmt: skip

KINDS: dict[Kind, RunKind] = {
    k.kind: k for k in (EXPERIMENT, EXPERIMENT_JOB, JOB, BUILD, TENSORBOARD, NOTEBOOK, GROUP)
}
BY_MODEL: dict[type[Any], RunKind] = {k.model: k for k in KINDS.values()}
# The kinds the reconciler runs as workloads of their own (an experiment's jobs are its replicas).
RUNS: tuple[RunKind, ...] = (EXPERIMENT, JOB, BUILD)
PLUGINS: tuple[RunKind, ...] = (TENSORBOARD, NOTEBOOK)
# The kinds whose rows carry run-scoped tokens (Token.run_kind).
TOKEN_KINDS: tuple[RunKind, ...] = (*RUNS, *PLUGINS)


def project_unique_name(owner: str, project: str) -> str:
    return f"{owner}.{project}"


def replica_unique_name(experiment_unique: str, job_id: int, role: str) -> str:
    """An experiment's job (replica) is named after its experiment, its id and its role."""
    return f"{experiment_unique}.{job_id}.{role}"


def kind_of(row: Any) -> RunKind:
    try:
        return BY_MODEL[type(row)]
    except KeyError:
        raise TypeError(f"{type(row).__name__} is not a kind of run") from None
