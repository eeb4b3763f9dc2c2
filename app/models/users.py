from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
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
    """API tokens: user tokens (run_kind NULL, several per user: one per login) and run-scoped
    tokens of runs.

    Only `digest` (app/security.py `token_digest`) is stored: the clear token is shown once, when
    issued. A lookup is by digest, so the time it takes depends on the digest of what was
    presented, which tells nothing about any stored token.
    """

    __tablename__ = "tokens"
    __table_args__ = (Index("ix_tokens_run", "run_kind", "run_id"),)

    digest: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    run_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # NULL: until revoked (logout, password change, run done). Login sets it from PLX_TOKEN_TTL.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ServerSecret(Base):
    """Installation-wide secrets shared by every replica (the token digest key)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128), nullable=False)
