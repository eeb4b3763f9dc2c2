"""Declarative base, column types that behave the same on SQLite and Postgres, common mixins."""

from __future__ import annotations

import uuid as uuid_lib
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return uuid_lib.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSON as written, on both databases: Postgres `json` keeps the text, so objects come back with
# their keys in the order the user wrote them (JSONB re-sorts them by length, then bytes). A sweep
# is the product of its matrix in file order, random/BO points are drawn parameter by parameter,
# declarations and configs are rendered and answered in that order: all must read back alike on
# SQLite and Postgres (issue 15). `->>` filters still work on `json`.
JSONType = JSON()
# JSONB on Postgres for the values SQL operates on: `tags` (`@>` containment, arrays keep their
# order in JSONB) and `last_metric` (`||` merge in one UPDATE, `->>` filter and sort). Their keys
# carry no order anybody relies on.
QueryJSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class IdMixin:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)


class UuidMixin:
    uuid: Mapped[str] = mapped_column(String(32), default=new_uuid, unique=True, nullable=False)


class TimestampsMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class RunMixin:
    """Columns shared by every runnable entity (experiments, jobs, builds, plugins)."""

    last_status: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ProjectRunMixin:
    """The owner, the project and the words of every run kind and group (v0's common columns)."""

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    readme: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[list[str] | None] = mapped_column(QueryJSONType, nullable=True)


class StatusRowMixin:
    """Append-only status history rows (polyaxon-v0.md 3): one table per entity kind."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(32), default=new_uuid, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    message: Mapped[str | None] = mapped_column(String(256), nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobStatusRowMixin(StatusRowMixin):
    """The status history of a pod-level run (`job_id` into `__runs_table__`), with the pod's
    details; indexed by run and time as every history is read."""

    __tablename__: str
    __runs_table__: ClassVar[str]
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (Index(f"ix_{cls.__tablename__}_job_created", "job_id", "created_at"),)

    @declared_attr
    def job_id(cls) -> Mapped[int]:
        return mapped_column(
            ForeignKey(f"{cls.__runs_table__}.id", ondelete="CASCADE"), nullable=False
        )


def owner_fk(table: str, *, nullable: bool = False, index: bool = True) -> Any:
    return mapped_column(
        ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=nullable, index=index
    )


__all__ = [
    "Base",
    "IdMixin",
    "JSONType",
    "JobStatusRowMixin",
    "ProjectRunMixin",
    "QueryJSONType",
    "RunMixin",
    "StatusRowMixin",
    "TimestampsMixin",
    "UTCDateTime",
    "UuidMixin",
    "declared_attr",
    "new_uuid",
    "owner_fk",
    "utcnow",
]
