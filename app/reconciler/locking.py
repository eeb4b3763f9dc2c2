"""Row locks of the run step, in the one order every writer keeps.

Rows are locked FOR NO KEY UPDATE (as `set_status` does): an experiment before its replicas, and
several runs of one kind in ascending id order (app/services/statuses.py lock_row). A locked row
is recorded (`mark_locked`), so `set_status` does not read it under its lock a second time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kinds import RUNS
from app.models import Experiment, ExperimentJob
from app.services.statuses import mark_locked

# The run tables of the run step, by kind name (experiments, jobs, builds).
RUN_MODELS: dict[str, type[Any]] = {run.kind.value: run.model for run in RUNS}

RunRef = tuple[str, int]  # (kind, run id)


async def lock_run(session: AsyncSession, kind: str, run_id: int) -> Any:
    """The run's row, locked and fresh; None when it is gone."""
    fresh = await session.get(
        RUN_MODELS[kind], run_id, populate_existing=True, with_for_update={"key_share": True}
    )
    if fresh is not None:
        mark_locked(session, fresh)
    return fresh


async def lock_runs(session: AsyncSession, refs: list[RunRef]) -> dict[RunRef, Any]:
    """The rows of `refs` locked (as `lock_run`), one statement per kind."""
    rows: dict[RunRef, Any] = {}
    for kind, model in RUN_MODELS.items():
        ids = sorted({run_id for k, run_id in refs if k == kind})
        if not ids:
            continue
        stmt = (
            select(model)
            .where(model.id.in_(ids))
            .order_by(model.id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        for row in await session.scalars(stmt):
            mark_locked(session, row)
            rows[(kind, row.id)] = row
    return rows


async def replicas_of(
    session: AsyncSession, exp_ids: list[int], *, lock: bool = True
) -> dict[int, list[ExperimentJob]]:
    """The replica rows of these experiments in id order, by experiment; `lock`: locked too
    (the experiments must be locked already: an experiment before its jobs)."""
    if not exp_ids:
        return {}
    stmt = (
        select(ExperimentJob)
        .where(ExperimentJob.experiment_id.in_(exp_ids))
        .order_by(ExperimentJob.id)
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update(key_share=True)
    jobs: dict[int, list[ExperimentJob]] = {}
    for job in await session.scalars(stmt):
        if lock:
            mark_locked(session, job)
        jobs.setdefault(job.experiment_id, []).append(job)
    return jobs


async def locked_replicas(session: AsyncSession, exp: Experiment) -> list[ExperimentJob]:
    """The experiment's replica rows, locked in id order (the experiment is locked already)."""
    return (await replicas_of(session, [exp.id])).get(exp.id, [])


async def load_many(session: AsyncSession, model: Any, ids: set[Any]) -> None:
    """Read these rows into the session in one statement: later `session.get`s are free."""
    ids.discard(None)
    if ids:
        await session.scalars(select(model).where(model.id.in_(sorted(ids))))
