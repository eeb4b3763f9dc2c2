"""The status writer's session hooks: scoped to the app's sessions, same answers elsewhere."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import session_scope
from app.logic.statuses import Status
from app.models import Experiment, ExperimentStatus, Project
from app.services.statuses import set_status


async def _experiments(app: Any, owner: Any, count: int) -> list[int]:
    async with session_scope(app.state.sessionmaker) as session:
        project = Project(user_id=owner.id, name="p")
        session.add(project)
        await session.flush()
        rows = [Experiment(user_id=owner.id, project_id=project.id) for _ in range(count)]
        session.add_all(rows)
        await session.flush()
        for row in rows:
            assert await set_status(session, row, Status.CREATED)
        return [row.id for row in rows]


async def _history(session: AsyncSession, ids: list[int]) -> list[tuple[int, str]]:
    rows = await session.execute(
        select(ExperimentStatus.experiment_id, ExperimentStatus.status)
        .where(ExperimentStatus.experiment_id.in_(ids))
        .order_by(ExperimentStatus.id)
    )
    return [(exp_id, status) for exp_id, status in rows]


async def test_pending_history_rows_are_written_at_commit_in_the_order_set(app, owner):
    first, second = await _experiments(app, owner, 2)
    async with session_scope(app.state.sessionmaker) as session:
        a, b = await session.get(Experiment, first), await session.get(Experiment, second)
        assert await set_status(session, a, Status.SCHEDULED, flush=False)
        assert await set_status(session, b, Status.SCHEDULED, flush=False)
        assert await set_status(session, a, Status.RUNNING, flush=False, message="go")
    async with session_scope(app.state.sessionmaker) as session:
        assert await _history(session, [first, second]) == [
            (first, "created"),
            (second, "created"),
            (first, "scheduled"),
            (second, "scheduled"),
            (first, "running"),
        ]
        assert (await session.get(Experiment, first)).last_status == "running"


async def test_a_rollback_drops_the_pending_history_rows(app, owner):
    (exp_id,) = await _experiments(app, owner, 1)
    async with app.state.sessionmaker() as session:
        exp = await session.get(Experiment, exp_id)
        assert await set_status(session, exp, Status.SCHEDULED, flush=False)
        await session.rollback()
        await session.commit()  # nothing left to write
    async with session_scope(app.state.sessionmaker) as session:
        assert await _history(session, [exp_id]) == [(exp_id, "created")]


async def test_a_session_outside_the_app_writes_history_at_once_and_keeps_no_locks(app, owner):
    """A plain AsyncSession runs none of the app's session hooks: the writer neither leaves
    rows for a commit hook nor remembers locks a transaction end would have to forget."""
    (exp_id,) = await _experiments(app, owner, 1)
    async with AsyncSession(app.state.engine) as session, session.begin():
        exp = await session.get(Experiment, exp_id)
        assert await set_status(session, exp, Status.SCHEDULED, flush=False)
        await session.flush()
        assert await _history(session, [exp_id]) == [(exp_id, "created"), (exp_id, "scheduled")]
        assert not session.info  # no pending rows, no remembered locks
    async with AsyncSession(app.state.engine) as session, session.begin():
        exp = await session.get(Experiment, exp_id)
        assert await set_status(session, exp, Status.RUNNING)
    async with session_scope(app.state.sessionmaker) as session:
        count = select(func.count()).where(ExperimentStatus.experiment_id == exp_id)
        assert await session.scalar(count) == 3
