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


_READ = text(
    "SELECT present.n > 0, mine.holder, mine.expired"
    " FROM (SELECT count(*) AS n FROM leases WHERE name = :name) AS present"
    " LEFT JOIN LATERAL (SELECT holder, expires_at < now() AS expired FROM leases"
    " WHERE name = :name FOR UPDATE SKIP LOCKED) AS mine ON true"
)
_INSERT = text(
    "INSERT INTO leases (name, holder, expires_at, takeovers) "
    "VALUES (:name, :holder, now() + make_interval(secs => :ttl), 0) "
    "ON CONFLICT (name) DO NOTHING RETURNING name"
)


def _postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"  # type: ignore[union-attr]


async def claim(session: AsyncSession, name: str, holder: str, ttl: float = DEFAULT_TTL) -> bool:
    """Hold `name` for `ttl` seconds from the database's now; False when another holder has it.

    Call inside the transaction that does the work: the row lock taken here keeps any other
    replica from claiming until that transaction ends, and the lease keeps it after."""
    if not _postgres(session):
        return True
    params = {"name": name, "holder": holder, "ttl": ttl}
    # One round trip tells "no such lease" from "locked by a replica claiming it right now"
    # (an INSERT ... ON CONFLICT first would wait for that replica's transaction instead).
    present, current, expired = (await session.execute(_READ, {"name": name})).one()
    if not present:
        inserted = await session.execute(_INSERT, params)
        # No row: another replica inserted it just now.
        return inserted.first() is not None
    if current is None:
        return False  # locked: another replica is claiming it right now
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
