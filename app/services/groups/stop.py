"""Stopping a group's experiments, in bulk and in the global lock order, and recording why."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.logic.statuses import Status
from app.models import Experiment, ExperimentGroup, GroupDecision
from app.models.base import utcnow
from app.services.groups.states import GROUP_ACTIVE, PENDING, RUNNING
from app.services.statuses import lock_row, set_status, write_history


async def stop_group(
    session: AsyncSession, group: ExperimentGroup, *, pending_only: bool, message: str
) -> bool:
    """v0 stop: pending experiments become `stopped` at once; unless `pending_only`, running
    ones are asked to stop (the run step kills them). A done group is left as it is."""
    # Lock the group first: the group step holds this lock while it inserts a batch, so no
    # experiment it is creating can escape the stop below.
    locked = await lock_row(session, group)
    if locked is None or locked.last_status not in GROUP_ACTIVE:
        return False
    locked.stop_requested = True
    await stop_pending_experiments(session, locked.id, message=message)
    if not pending_only:
        await request_stop(session, locked.id, None)
    return await set_status(session, locked, Status.STOPPED, message=message)


async def stop_pending_experiments(
    session: AsyncSession, group_id: int, *, message: str
) -> list[int]:
    """Pending experiments of the group become `stopped` (v0: directly, no workload exists).

    One conditional UPDATE instead of a `set_status` per row, so that stopping a 100,000-
    experiment group answers at once. It is the same compare-and-set: only rows still pending
    (created/resuming, from which `stopped` is always allowed) change; a run the run step is
    starting right now has left `created` and is stopped through its workload instead.
    """
    now = utcnow()
    pending = (Experiment.experiment_group_id == group_id, Experiment.last_status.in_(PENDING))
    stmt = (
        update(Experiment)
        .where(locked_in_id_order(*pending), *pending)
        .values(
            last_status=Status.STOPPED,
            is_managed=False,
            updated_at=now,
            finished_at=func.coalesce(Experiment.finished_at, now),
            started_at=func.coalesce(Experiment.started_at, Experiment.created_at),
        )
        .returning(Experiment.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted((await session.execute(stmt)).scalars().all())
    await write_history(session, Experiment, ids, Status.STOPPED, at=now, message=message)
    return ids


async def request_stop(session: AsyncSession, group_id: int, ids: Sequence[int] | None) -> None:
    """Flag running experiments for the run step, which stops their workloads."""
    running: list[ColumnElement[bool]] = [
        Experiment.experiment_group_id == group_id,
        Experiment.last_status.in_(RUNNING),
    ]
    if ids is not None:
        running.append(Experiment.id.in_(list(ids)))
    stmt = update(Experiment).where(locked_in_id_order(*running), *running)
    await session.execute(
        stmt.values(stop_requested=True).execution_options(synchronize_session=False)
    )


def locked_in_id_order(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """`Experiment.id IN (...)` of the rows matching `conditions`, locked by ascending id.

    A bulk UPDATE locks rows in whatever order its scan meets them, so two of them (or one and a
    writer locking experiments one at a time by id) could each hold a row the other waits for.
    The ordered FOR NO KEY UPDATE subquery takes the locks in the global order first; a row that
    changed meanwhile is re-checked against `conditions` and left out.
    """
    return Experiment.id.in_(
        select(Experiment.id)
        .where(*conditions)
        .order_by(Experiment.id)
        .with_for_update(key_share=True)
    )


async def record_decision(
    session: AsyncSession,
    group: ExperimentGroup,
    *,
    kind: str,
    reason: str,
    experiment_ids: Sequence[int] | None,
    inputs: dict[str, Any] | None,
) -> GroupDecision:
    """Why the sweep stopped experiments or itself, with the inputs of that decision."""
    decision = GroupDecision(
        experiment_group_id=group.id,
        kind=kind,
        reason=reason,
        experiment_ids=list(experiment_ids) if experiment_ids is not None else None,
        inputs=inputs,
    )
    session.add(decision)
    await session.flush()
    return decision
