"""When a run's token stops working: `PLX_RUN_TOKEN_GRACE_SECONDS` after its run is done.

A run's token (contract.md 3) is checked against its run on every request that is not served
from `RunClock`: a done run's end never moves (done is final), so it is kept for good; a live
run is looked at again after `ttl` seconds (`PLX_AUTH_CACHE_SECONDS`, the staleness the principal
cache already allows). A notebook stopped with `commit` keeps its token until its pod's preStop
hook has had the time to upload the snapshot (app/k8s/manifests.py), the one thing it still does.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import PermissionDenied
from app.kinds import NOTEBOOK, RUNS
from app.logic.statuses import is_done
from app.models import CodeReference, NotebookJob
from app.models.base import utcnow
from app.runtimes.base import NOTEBOOK_GRACE_MARGIN, NOTEBOOK_SNAPSHOT_TIMEOUT
from app.services.users import Principal

# The kinds whose tokens a run holds while it runs (a tensorboard gets none).
RUN_TABLES: dict[str, type[Any]] = {kind.kind: kind.model for kind in (*RUNS, NOTEBOOK)}
MAX_ENTRIES = 10_000
_LIVE = None  # a live run: no end yet


def snapshot_window() -> float:
    """Seconds a stopped notebook's pod may still upload its snapshot."""
    return float(NOTEBOOK_SNAPSHOT_TIMEOUT + NOTEBOOK_GRACE_MARGIN)


def token_end(
    status: str | None, finished_at: datetime | None, *, grace: float, snapshot_pending: bool
) -> datetime | None:
    """When a run's token stops working (None: its run is not done). Pure."""
    if not is_done(status):
        return _LIVE
    end = finished_at or utcnow()
    return end + timedelta(seconds=max(grace, snapshot_window() if snapshot_pending else 0))


class RunClock:
    """(kind, run id) -> when its token ends, for `ttl` seconds (done runs: for good)."""

    def __init__(self, ttl: float, grace: float) -> None:
        self.ttl = ttl
        self.grace = grace
        self._entries: OrderedDict[tuple[str, int], tuple[float, datetime | None]] = OrderedDict()

    async def revoked(self, session: AsyncSession, kind: str, run_id: int) -> bool:
        key = (kind, run_id)
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            found, end = await _token_end(session, kind, run_id, self.grace)
            if not found:
                return True  # the run is gone (its tokens go with it)
            keep = float("inf") if end is not None else time.monotonic() + self.ttl
            entry = self._entries[key] = (keep, end)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        end = entry[1]
        return end is not None and end <= utcnow()


async def _token_end(
    session: AsyncSession, kind: str, run_id: int, grace: float
) -> tuple[bool, datetime | None]:
    table = RUN_TABLES.get(kind)
    if table is None:
        return False, None
    columns = [table.last_status, table.finished_at]
    if table is NotebookJob:
        columns += [NotebookJob.stop_requested, NotebookJob.commit_on_stop]
    row = (await session.execute(select(*columns).where(table.id == run_id))).first()
    if row is None:
        return False, None
    pending = table is NotebookJob and bool(row[2] and row[3])
    return True, token_end(row[0], row[1], grace=grace, snapshot_pending=pending)


async def own_code_version(
    session: AsyncSession, principal: Principal, project_id: int, commit: str | None
) -> str:
    """The code version a run token may download: the one its run runs (named by `commit`, a
    full id or a prefix, or left out), nothing else (403)."""
    table = RUN_TABLES.get(principal.run_kind or "")
    row = None
    if table is not None:
        query = (
            select(table.project_id, CodeReference.commit)
            .join(CodeReference, CodeReference.id == table.code_reference_id)
            .where(table.id == principal.run_id)
        )
        row = (await session.execute(query)).first()
    if row is None or row[0] != project_id:
        raise PermissionDenied("A run token may only download the code its run runs.")
    own: str = row[1]
    if commit and not own.startswith(commit.strip().lower()):
        raise PermissionDenied("A run token may only download the code its run runs.")
    return own
