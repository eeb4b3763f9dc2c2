from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, JSONType, QueryJSONType, TimestampsMixin, UuidMixin


class Project(IdMixin, UuidMixin, TimestampsMixin, Base):
    __tablename__ = "projects"
    __table_args__ = (
        UniqueConstraint("user_id", "name"),
        Index("ix_projects_user_updated", "user_id", "updated_at"),
        Index("ix_projects_updated", "updated_at"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    readme: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[list[str] | None] = mapped_column(QueryJSONType, nullable=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # Denormalised: the uploaded code version in use (see app/models/code.py).
    code_reference_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class Bookmark(IdMixin, Base):
    """A user's bookmark on a project, group, experiment, job or build (`content_type`)."""

    __tablename__ = "bookmarks"
    __table_args__ = (
        UniqueConstraint("user_id", "content_type", "object_id"),
        Index("ix_bookmarks_object", "content_type", "object_id"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    content_type: Mapped[str] = mapped_column(String(32), nullable=False)
    object_id: Mapped[int] = mapped_column(Integer, nullable=False)
