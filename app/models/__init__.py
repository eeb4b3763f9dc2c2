"""ORM models mirroring the Polyaxon v0 tables. Import everything so metadata is complete."""

from app.models.base import Base
from app.models.code import CodeReference
from app.models.events import Event, Lease
from app.models.experiments import (
    Experiment,
    ExperimentJob,
    ExperimentJobStatus,
    ExperimentMetric,
    ExperimentStatus,
    MetricSeries,
    MetricSeriesHead,
)
from app.models.groups import ExperimentGroup, ExperimentGroupStatus, GroupDecision
from app.models.jobs import (
    BuildJob,
    BuildJobStatus,
    Job,
    JobStatus,
    NotebookJob,
    NotebookJobStatus,
    TensorboardJob,
    TensorboardJobStatus,
)
from app.models.projects import Bookmark, Project
from app.models.users import ServerSecret, Token, User

__all__ = [
    "Base",
    "Bookmark",
    "BuildJob",
    "BuildJobStatus",
    "CodeReference",
    "Event",
    "Experiment",
    "ExperimentGroup",
    "ExperimentGroupStatus",
    "ExperimentJob",
    "ExperimentJobStatus",
    "ExperimentMetric",
    "ExperimentStatus",
    "GroupDecision",
    "Lease",
    "MetricSeries",
    "MetricSeriesHead",
    "Job",
    "JobStatus",
    "NotebookJob",
    "NotebookJobStatus",
    "Project",
    "ServerSecret",
    "TensorboardJob",
    "TensorboardJobStatus",
    "Token",
    "User",
]
