"""The reconciler loop and the compare-and-set status writer."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from app.db import session_scope
from app.models import Experiment, ExperimentStatus, Project
from app.reconciler.loop import Reconciler
from app.runtimes.fake import FakeRuntime
from app.services.statuses import set_status


async def _experiment(app, owner) -> int:
    async with session_scope(app.state.sessionmaker) as session:
        project = Project(user_id=owner.id, name="p")
        session.add(project)
        await session.flush()
        exp = Experiment(user_id=owner.id, project_id=project.id)
        session.add(exp)
        await session.flush()
        assert await set_status(session, exp, "created")
        return exp.id


async def test_set_status_follows_rules_and_clock(app, owner):
    exp_id = await _experiment(app, owner)
    async with session_scope(app.state.sessionmaker) as session:
        exp = await session.get(Experiment, exp_id)
        assert exp.started_at is None
        assert await set_status(session, exp, "running", message="x" * 500)
        assert exp.started_at is not None and exp.last_status == "running"
        assert not await set_status(session, exp, "created")  # illegal: no-op
        assert not await set_status(session, exp, "bogus")
        assert await set_status(session, exp, "succeeded")
        assert exp.finished_at is not None
        # done is final, even forced
        assert not await set_status(session, exp, "running", force=True)
        assert not await set_status(session, exp, "failed")
    async with session_scope(app.state.sessionmaker) as session:
        rows = (
            await session.scalars(
                select(ExperimentStatus)
                .where(ExperimentStatus.experiment_id == exp_id)
                .order_by(ExperimentStatus.id)
            )
        ).all()
        assert [r.status for r in rows] == ["created", "running", "succeeded"]
        assert len(rows[1].message) == 256


async def test_force_skips_table_but_not_done(app, owner):
    exp_id = await _experiment(app, owner)
    async with session_scope(app.state.sessionmaker) as session:
        exp = await session.get(Experiment, exp_id)
        assert await set_status(session, exp, "resuming")
    async with session_scope(app.state.sessionmaker) as session:
        exp = await session.get(Experiment, exp_id)
        assert await set_status(session, exp, "running")
        assert not await set_status(session, exp, "scheduled")
        assert await set_status(session, exp, "scheduled", force=True)
        assert exp.last_status == "scheduled"


async def test_compare_and_set_sees_other_writer(app, owner):
    exp_id = await _experiment(app, owner)
    async with session_scope(app.state.sessionmaker) as session:
        stale = await session.get(Experiment, exp_id)
    async with session_scope(app.state.sessionmaker) as session:
        exp = await session.get(Experiment, exp_id)
        assert await set_status(session, exp, "stopped")
    async with session_scope(app.state.sessionmaker) as session:
        session.add(stale)
        # the stale copy says "created", but the row is done: refused
        assert not await set_status(session, stale, "running")


async def test_loop_runs_steps_in_order_and_survives_failures(app):
    seen: list[str] = []

    async def broken(rec):
        seen.append("broken")
        raise ValueError("boom")

    async def ok(rec):
        seen.append("ok")

    reconciler = Reconciler(app.state.settings, app.state.sessionmaker, FakeRuntime())
    reconciler.register_step(broken)
    reconciler.register_step(ok)
    reconciler.register_step(ok)  # registered once
    await reconciler.reconcile_once()
    assert seen == ["broken", "ok"]


async def test_loop_wakes_on_demand(app):
    app.state.settings.reconcile_interval = 60
    passes = asyncio.Event()

    async def step(rec):
        passes.set()

    runtime = FakeRuntime()
    reconciler = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[step])
    await reconciler.start()
    try:
        await asyncio.wait_for(passes.wait(), 5)
        passes.clear()
        reconciler.wake()
        await asyncio.wait_for(passes.wait(), 5)
        assert reconciler.passes >= 2 and runtime.setup_calls == 1
    finally:
        await reconciler.stop()
    assert runtime.closed
