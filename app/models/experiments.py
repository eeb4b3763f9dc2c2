from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import (
    Base,
    IdMixin,
    JSONType,
    QueryJSONType,
    RunMixin,
    StatusRowMixin,
    TimestampsMixin,
    UTCDateTime,
    UuidMixin,
    utcnow,
)


class Experiment(IdMixin, UuidMixin, TimestampsMixin, RunMixin, Base):
    __tablename__ = "experiments"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        # Exactly-once materialisation of a sweep: one experiment per (group, suggestion).
        UniqueConstraint("experiment_group_id", "suggestion_index"),
        Index("ix_experiments_project_updated", "project_id", "updated_at"),
        Index("ix_experiments_group_status", "experiment_group_id", "last_status"),
        # A group's experiment list (newest first) without scanning the project's rows.
        Index("ix_experiments_group_updated", "experiment_group_id", "updated_at"),
        # `query=status:...` lists, newest first.
        Index("ix_experiments_project_status_updated", "project_id", "last_status", "updated_at"),
        # The reconciler's pass reads the active rows (a handful) among many finished ones.
        Index("ix_experiments_status", "last_status", "id"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    experiment_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiment_groups.id", ondelete="CASCADE"), nullable=True
    )
    suggestion_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    iteration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    readme: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[list[str] | None] = mapped_column(QueryJSONType, nullable=True)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    declarations: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    last_metric: Mapped[dict[str, Any] | None] = mapped_column(QueryJSONType, nullable=True)
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    run_env: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    data_refs: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    original_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="SET NULL"), nullable=True
    )
    cloning_strategy: Mapped[str | None] = mapped_column(String(16), nullable=True)
    build_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("build_jobs.id", ondelete="SET NULL"), nullable=True
    )
    code_reference_id: Mapped[int | None] = mapped_column(
        ForeignKey("code_references.id", ondelete="SET NULL"), nullable=True
    )
    # True when the spec has `run`: the reconciler starts it. False: tracking-only.
    is_managed: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ExperimentStatus(StatusRowMixin, Base):
    __tablename__ = "experiment_statuses"
    __table_args__ = (Index("ix_experiment_statuses_exp_created", "experiment_id", "created_at"),)

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False
    )


class ExperimentMetric(IdMixin, Base):
    __tablename__ = "experiment_metrics"
    __table_args__ = (Index("ix_experiment_metrics_exp_created", "experiment_id", "created_at"),)

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)


# The name of the head row that counts all of a run's points (a metric name has 1+ characters).
RUN_POINTS = ""


class MetricSeriesHead(Base):
    """How many points a run reported for each metric name, and in all (name `RUN_POINTS`): the
    next point's index in its series, and the run's position of a point without a `step`."""

    __tablename__ = "metric_series_heads"
    __table_args__ = (PrimaryKeyConstraint("experiment_id", "name"),)

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    points: Mapped[int] = mapped_column(Integer, nullable=False)


class MetricSeries(Base):
    """Each metric name's series of a run, written with every metric point, so a chart reads
    one name without the run's other values. Level 0 holds every point (`bucket` is its index in
    the series); level k > 0 holds, per bucket of 2^k consecutive points, the lowest (`step`,
    `at`, `value`) and the highest (`high_*`) point: a chart of 2,000 points over a million
    reads a few thousand rows of a level instead of the million."""

    __tablename__ = "metric_series"
    __table_args__ = (
        PrimaryKeyConstraint("experiment_id", "name", "level", "bucket"),
        # Zooming into a step range at full resolution reads level 0 over this index.
        Index("ix_metric_series_exp_name_level_step", "experiment_id", "name", "level", "step"),
    )

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    level: Mapped[int] = mapped_column(Integer, nullable=False)
    bucket: Mapped[int] = mapped_column(Integer, nullable=False)
    points: Mapped[int] = mapped_column(Integer, nullable=False)
    step: Mapped[float] = mapped_column(Float, nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    high_step: Mapped[float | None] = mapped_column(Float, nullable=True)
    high_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    high_value: Mapped[float | None] = mapped_column(Float, nullable=True)


class ExperimentJob(IdMixin, UuidMixin, TimestampsMixin, RunMixin, Base):
    """One replica of an experiment (master, worker N, ps N)."""

    __tablename__ = "experiment_jobs"
    __table_args__ = (UniqueConstraint("experiment_id", "role", "replica_index"),)

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    replica_index: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    definition: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    node_scheduled: Mapped[str | None] = mapped_column(String(256), nullable=True)


class ExperimentJobStatus(StatusRowMixin, Base):
    __tablename__ = "experiment_job_statuses"
    __table_args__ = (Index("ix_experiment_job_statuses_job_created", "job_id", "created_at"),)

    job_id: Mapped[int] = mapped_column(
        ForeignKey("experiment_jobs.id", ondelete="CASCADE"), nullable=False
    )
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
