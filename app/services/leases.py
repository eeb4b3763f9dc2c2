"""Leases on units of reconcile work, so several replicas on one Postgres share it.

A lease is a row `(name, holder, expires_at)`. `claim()` takes it when it is free, expired, or
already ours, and never waits: the row is read `FOR UPDATE SKIP LOCKED`, so a replica that finds
another one claiming the same unit right now simply skips it this pass. Expiry is judged with the
database clock (`now()`), never the replica's, so a replica whose clock is minutes off is still
safe. Taking over an expired lease of another holder counts a takeover (shown on /metrics).

SQLite runs one reconciler per database (one process owns the file), so claims always succeed
there without touching the table.
"""

from __future__ import annotations

import os
import socket
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

DEFAULT_TTL = 30.0  # seconds


def make_holder() -> str:
    """A replica identity: host, pid and a random part (pids repeat across containers)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_of(owner: object) -> str:
    """The holder name of a reconciler (made once, kept on the object)."""
    holder = getattr(owner, "lease_holder", None)
    if holder is None:
        holder = make_holder()
        owner.lease_holder = holder  # type: ignore[attr-defined]
    return holder


def _postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"  # type: ignore[union-attr]


async def claim(session: AsyncSession, name: str, holder: str, ttl: float = DEFAULT_TTL) -> bool:
    """Hold `name` for `ttl` seconds from the database's now; False when another holder has it.

    Call inside the transaction that does the work: the row lock taken here keeps any other
    replica from claiming until that transaction ends, and the lease keeps it after."""
    if not _postgres(session):
        return True
    params = {"name": name, "holder": holder, "ttl": ttl}
    row = (
        await session.execute(
            text(
                "SELECT holder, expires_at < now() AS expired FROM leases "
                "WHERE name = :name FOR UPDATE SKIP LOCKED"
            ),
            {"name": name},
        )
    ).first()
    if row is None:
        exists = await session.execute(
            text("SELECT 1 FROM leases WHERE name = :name"), {"name": name}
        )
        if exists.first() is not None:
            return False  # locked: another replica is claiming it right now
        inserted = await session.execute(
            text(
                "INSERT INTO leases (name, holder, expires_at, takeovers) "
                "VALUES (:name, :holder, now() + make_interval(secs => :ttl), 0) "
                "ON CONFLICT (name) DO NOTHING RETURNING name"
            ),
            params,
        )
        # No row: either another replica inserted it just now, or it exists but is locked.
        return inserted.first() is not None
    current, expired = row
    if current != holder and not expired:
        return False
    await session.execute(
        text(
            "UPDATE leases SET holder = :holder, "
            "expires_at = now() + make_interval(secs => :ttl), "
            "takeovers = takeovers + :takeover WHERE name = :name"
        ),
        {**params, "takeover": int(current != holder)},
    )
    return True


async def release(session: AsyncSession, name: str, holder: str) -> None:
    if _postgres(session):
        await session.execute(
            text("DELETE FROM leases WHERE name = :name AND holder = :holder"),
            {"name": name, "holder": holder},
        )
