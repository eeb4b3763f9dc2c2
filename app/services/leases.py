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

from app.dialects import is_postgres

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
    "SELECT present.name, mine.holder, mine.expired FROM leases AS present"
    " LEFT JOIN LATERAL (SELECT holder, expires_at < now() AS expired FROM leases AS l"
    " WHERE l.name = present.name FOR UPDATE SKIP LOCKED) AS mine ON true"
    " WHERE present.name = ANY(:names)"
)
_INSERT = text(
    "INSERT INTO leases (name, holder, expires_at, takeovers)"
    " SELECT unnest(CAST(:names AS text[])), :holder, now() + make_interval(secs => :ttl), 0"
    " ON CONFLICT (name) DO NOTHING RETURNING name"
)
_TAKE = text(
    "UPDATE leases SET expires_at = now() + make_interval(secs => :ttl),"
    " takeovers = takeovers + CASE WHEN holder = :holder THEN 0 ELSE 1 END, holder = :holder"
    " WHERE name = ANY(:names)"
)


async def claim_many(
    session: AsyncSession, names: list[str], holder: str, ttl: float = DEFAULT_TTL
) -> set[str]:
    """Hold each of `names` for `ttl` seconds from the database's now, in at most three round
    trips; the names now held by `holder` (a name another holder has is left out).

    Call inside the transaction that does the work: the row locks taken here keep any other
    replica from claiming until that transaction ends, and the leases keep them after. The read
    comes first and skips locked rows, so a lease another replica is claiming right now is left
    out, not waited for (an INSERT ... ON CONFLICT first would wait for that transaction)."""
    if not is_postgres(session) or not names:
        return set(names)
    found = (await session.execute(_READ, {"names": names})).all()
    # Ours already, or another's that expired. Left out: one locked by a replica claiming it
    # right now (holder None), another's that has not expired.
    takeable = [n for n, current, expired in found if current == holder or (current and expired)]
    absent = sorted(set(names) - {n for n, _, _ in found})
    held = set(takeable)
    if absent:
        inserted = await session.execute(_INSERT, {"names": absent, "holder": holder, "ttl": ttl})
        held.update(inserted.scalars())  # a name missing here was inserted by another just now
    if takeable:
        await session.execute(_TAKE, {"names": takeable, "holder": holder, "ttl": ttl})
    return held


async def claim(session: AsyncSession, name: str, holder: str, ttl: float = DEFAULT_TTL) -> bool:
    """`claim_many` for one name: True when `holder` now holds it."""
    return name in await claim_many(session, [name], holder, ttl)


async def release(session: AsyncSession, name: str, holder: str) -> None:
    if is_postgres(session):
        await session.execute(
            text("DELETE FROM leases WHERE name = :name AND holder = :holder"),
            {"name": name, "holder": holder},
        )
