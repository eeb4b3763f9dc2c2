"""The change feed (`events`) and reconcile work leases (`leases`).

Event rows are written by database triggers (migration 0002), so every insert or delete of the
watched tables -- ORM, Core bulk insert or FK cascade alike -- lands in the same transaction.
`txid` is the writing transaction's id on Postgres (0 on SQLite); the feed orders by
`(txid, id)` and only exposes transactions older than every in-flight one (app/services/events.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, UTCDateTime, utcnow

# SQLite only aliases the rowid for exactly `INTEGER PRIMARY KEY`.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_project_cursor", "project_id", "txid", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    txid: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # No FK: a project's own `deleted` event must outlive the project row.
    project_id: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # created|deleted|status|metric
    object_type: Mapped[str] = mapped_column(String(32), nullable=False)
    object_id: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Lease(Base):
    """A named unit of reconcile work held by one replica until `expires_at` (database clock)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    takeovers: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
