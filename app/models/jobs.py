"""Jobs, builds, tensorboards and notebooks: pod-level runs (polyaxon-v0.md 3.2)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import (
    Base,
    IdMixin,
    JobStatusRowMixin,
    JSONType,
    ProjectRunMixin,
    RunMixin,
    TimestampsMixin,
    UuidMixin,
)


class _JobColumns(IdMixin, UuidMixin, TimestampsMixin, RunMixin, ProjectRunMixin):
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    node_scheduled: Mapped[str | None] = mapped_column(String(256), nullable=True)
    code_reference_id: Mapped[int | None] = mapped_column(
        ForeignKey("code_references.id", ondelete="SET NULL"), nullable=True
    )
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class BuildJob(_JobColumns, Base):
    __tablename__ = "build_jobs"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        Index("ix_build_jobs_project_updated", "project_id", "updated_at"),
        # De-duplication of builds on (project, build config, code version).
        Index("ix_build_jobs_dedupe", "project_id", "config_hash", "code_reference_id"),
        Index("ix_build_jobs_status", "last_status", "id"),  # the reconciler's active rows
    )

    dockerfile: Mapped[str | None] = mapped_column(Text, nullable=True)
    commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    config_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    image: Mapped[str | None] = mapped_column(String(512), nullable=True)


class Job(_JobColumns, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        Index("ix_jobs_project_updated", "project_id", "updated_at"),
        Index("ix_jobs_status", "last_status", "id"),  # the reconciler's active rows
    )

    original_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    cloning_strategy: Mapped[str | None] = mapped_column(String(16), nullable=True)
    build_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("build_jobs.id", ondelete="SET NULL"), nullable=True
    )
    data_refs: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class TensorboardJob(_JobColumns, Base):
    __tablename__ = "tensorboard_jobs"
    __table_args__ = (Index("ix_tensorboard_jobs_project_updated", "project_id", "updated_at"),)

    experiment_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiment_groups.id", ondelete="CASCADE"), nullable=True, index=True
    )
    experiment_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), nullable=True, index=True
    )
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    url: Mapped[str | None] = mapped_column(String(512), nullable=True)


class NotebookJob(_JobColumns, Base):
    __tablename__ = "notebook_jobs"
    __table_args__ = (Index("ix_notebook_jobs_project_updated", "project_id", "updated_at"),)

    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    commit_on_stop: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)


class JobStatus(JobStatusRowMixin, Base):
    __tablename__ = "job_statuses"
    __runs_table__ = "jobs"


class BuildJobStatus(JobStatusRowMixin, Base):
    __tablename__ = "build_job_statuses"
    __runs_table__ = "build_jobs"


class TensorboardJobStatus(JobStatusRowMixin, Base):
    __tablename__ = "tensorboard_job_statuses"
    __runs_table__ = "tensorboard_jobs"


class NotebookJobStatus(JobStatusRowMixin, Base):
    __tablename__ = "notebook_job_statuses"
    __runs_table__ = "notebook_jobs"
