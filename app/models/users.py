from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, UTCDateTime, utcnow


class User(IdMixin, Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(150), unique=True, nullable=False)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(256), nullable=False)
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Token(IdMixin, Base):
    """API tokens. A user token (run_kind NULL, one per user) or a run-scoped token for a run.

    Lookup is by `selector` (the first 12 characters); the full key is then compared in constant
    time, so response timing does not reveal how much of a guessed token matched.
    """

    __tablename__ = "tokens"
    __table_args__ = (
        Index(
            "uq_tokens_user_token",
            "user_id",
            unique=True,
            sqlite_where=text("run_kind IS NULL"),
            postgresql_where=text("run_kind IS NULL"),
        ),
        Index("ix_tokens_run", "run_kind", "run_id"),
    )

    selector: Mapped[str] = mapped_column(String(12), unique=True, nullable=False)
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    run_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
