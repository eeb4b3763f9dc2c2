from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import (
    Base,
    IdMixin,
    JSONType,
    ProjectRunMixin,
    RunMixin,
    StatusRowMixin,
    TimestampsMixin,
    UTCDateTime,
    UuidMixin,
    utcnow,
)


class ExperimentGroup(IdMixin, UuidMixin, TimestampsMixin, RunMixin, ProjectRunMixin, Base):
    __tablename__ = "experiment_groups"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        Index("ix_experiment_groups_project_updated", "project_id", "updated_at"),
    )

    content: Mapped[str | None] = mapped_column(Text, nullable=True)  # YAML text as sent
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)  # normalised
    hptuning: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    group_type: Mapped[str] = mapped_column(String(16), default="study", nullable=False)
    search_algorithm: Mapped[str | None] = mapped_column(String(16), nullable=True)
    concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    current_iteration: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    code_reference_id: Mapped[int | None] = mapped_column(
        ForeignKey("code_references.id", ondelete="SET NULL"), nullable=True
    )
    # Reconciler bookkeeping: how many suggestions exist, and whether no more will come.
    num_planned: Mapped[int | None] = mapped_column(Integer, nullable=True)
    materialized_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    suggestions_done: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class ExperimentGroupStatus(StatusRowMixin, Base):
    __tablename__ = "experiment_group_statuses"
    __table_args__ = (
        Index("ix_group_statuses_group_created", "experiment_group_id", "created_at"),
    )

    experiment_group_id: Mapped[int] = mapped_column(
        ForeignKey("experiment_groups.id", ondelete="CASCADE"), nullable=False
    )


class GroupDecision(IdMixin, Base):
    """Why the sweep did something (early stopping, failure): inputs and reason, for users."""

    __tablename__ = "group_decisions"

    experiment_group_id: Mapped[int] = mapped_column(
        ForeignKey("experiment_groups.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    experiment_ids: Mapped[list[int] | None] = mapped_column(JSONType, nullable=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
