"""Releasing held experiments: at most `concurrency` of a group's experiments started at once.

A group's experiment is created held (`is_managed=False`: the run step ignores it); the group
step flips `is_managed=True` on at most `concurrency - occupied` of them per pass, where occupied
counts released experiments that are not done. A group file without `run` has nothing to start:
its experiments stay held (tracking-only, reported by their clients).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.models import Experiment, ExperimentGroup, ExperimentJob
from app.services.groups.states import DONE, PENDING, RUNNING


def starts_experiments(group: ExperimentGroup) -> bool:
    """Whether the group's file has `run`: its experiments are created held and released within
    the concurrency. Without it they are tracking-only, reported by their clients."""
    return bool((group.spec or {}).get("run"))


def held_clones_of(group_id: Any) -> ColumnElement[bool]:
    """Whether the group has a held experiment outside its plan (a restart, resume or copy)
    waiting for a slot. Tracking-only experiments have no jobs, so they never match."""
    return exists().where(
        Experiment.experiment_group_id == group_id,
        Experiment.last_status.in_(PENDING),
        Experiment.suggestion_index.is_(None),
        Experiment.is_managed.is_(False),
        Experiment.stop_requested.is_(False),
        exists().where(ExperimentJob.experiment_id == Experiment.id),
    )


async def _occupied_slots(session: AsyncSession, group_id: int) -> int:
    """Experiments released or already running, and not done."""
    occupied = await session.scalar(
        select(func.count()).where(
            Experiment.experiment_group_id == group_id,
            Experiment.last_status.not_in(DONE),
            (Experiment.is_managed.is_(True)) | Experiment.last_status.in_(RUNNING),
        )
    )
    return int(occupied or 0)


async def _next_held(session: AsyncSession, group_id: int, limit: int) -> list[int]:
    """The ids of the next `limit` held experiments, locked in id order."""
    stmt = (
        select(Experiment.id)
        .where(
            Experiment.experiment_group_id == group_id,
            Experiment.is_managed.is_(False),
            Experiment.last_status.in_(PENDING),
            Experiment.stop_requested.is_(False),
        )
        .order_by(Experiment.id)
        .limit(limit)
        .with_for_update(key_share=True)
    )
    return list((await session.scalars(stmt)).all())


async def release_experiments(session: AsyncSession, group: ExperimentGroup) -> list[int]:
    """Let at most `concurrency` experiments of the group be started or running at once.

    Held experiments go in id order: the plan's in suggestion order (materialised in that order),
    a clone after the experiments that existed when it was made."""
    if not starts_experiments(group):
        return []  # tracking-only experiments: nothing to start
    free = (group.concurrency or 1) - await _occupied_slots(session, group.id)
    if free <= 0:
        return []
    ids = await _next_held(session, group.id, free)
    if ids:
        await session.execute(
            update(Experiment)
            .where(Experiment.id.in_(ids))
            .values(is_managed=True)
            .execution_options(synchronize_session=False)
        )
    return ids
