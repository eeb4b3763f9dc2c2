"""A group's counters: its experiments by status, and whether its tensorboard is up."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.logic.statuses import Status
from app.models import Experiment, TensorboardJob
from app.services.groups.states import DONE, PENDING, PLUGIN_RUNNING, RUNNING


async def experiment_counts(session: AsyncSession, group_id: int) -> dict[str, int]:
    """The detail counters from one GROUP BY over the (group, last_status) index."""
    rows = await session.execute(
        select(Experiment.last_status, func.count())
        .where(Experiment.experiment_group_id == group_id)
        .group_by(Experiment.last_status)
    )
    by_status = {status: int(n) for status, n in rows.all()}

    def total(statuses: Collection[str]) -> int:
        return sum(by_status.get(s, 0) for s in statuses)

    return {
        "num_experiments": sum(by_status.values()),
        "num_pending_experiments": total(PENDING),
        # v0: the running set includes scheduled, so scheduled ones count twice.
        "num_running_experiments": total(RUNNING),
        "num_scheduled_experiments": total([Status.SCHEDULED]),
        "num_succeeded_experiments": total([Status.SUCCEEDED]),
        "num_failed_experiments": total([Status.FAILED]),
        "num_stopped_experiments": total([Status.STOPPED]),
    }


async def count_unfinished(session: AsyncSession, group_id: int) -> int:
    unfinished = await session.scalar(
        select(func.count()).where(
            Experiment.experiment_group_id == group_id, Experiment.last_status.not_in(DONE)
        )
    )
    return int(unfinished or 0)


async def has_tensorboard(session: AsyncSession, group_id: int) -> bool | None:
    """v0 `group.tensorboard and group.tensorboard.is_running`: None without a tensorboard."""
    status = await session.scalar(
        select(TensorboardJob.last_status)
        .where(TensorboardJob.experiment_group_id == group_id)
        .order_by(TensorboardJob.id.desc())
        .limit(1)
    )
    if status is None:
        return None
    return status in PLUGIN_RUNNING
