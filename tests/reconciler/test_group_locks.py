"""Lock order on Postgres: a group stop and a run step transaction never deadlock.

The global order is group -> experiments (ascending id) -> an experiment's jobs, and rows are
locked FOR NO KEY UPDATE, so the foreign-key checks of other writers (FOR KEY SHARE on the group
an experiment points at) never wait for a status change of the group.

The interleaving that deadlocked (issue #6, 2 of 21 crash-point e2e cases): the run step moves
an experiment through two statuses in one transaction. Its second UPDATE of the row it already
updated re-checks the row's foreign keys (Postgres does so for a row version written by the same
transaction), which takes FOR KEY SHARE on the group; the stop request held the group FOR UPDATE
and waited for that experiment.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import session_scope
from app.models import Experiment, ExperimentGroup
from app.reconciler.groups import reconcile_groups
from app.reconciler.loop import Reconciler
from app.runtimes.fake import FakeRuntime
from app.services.statuses import set_status
from tests.reconciler.test_groups import GROUPS, create, grid

WAIT_LIMIT = 10.0


@pytest.fixture(params=["postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Postgres only: SQLite has one writer at a time (BEGIN IMMEDIATE), so nothing interleaves."""
    return request.param


async def wait_until_blocked(session: AsyncSession, query_prefix: str) -> None:
    """Until another backend of this database waits on a lock while running `query_prefix`."""
    deadline = asyncio.get_running_loop().time() + WAIT_LIMIT
    while asyncio.get_running_loop().time() < deadline:
        blocked = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE :q"
            ),
            {"q": f"{query_prefix}%"},
        )
        await session.rollback()  # a fresh snapshot of pg_stat_activity next time
        if blocked:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no backend blocked on `{query_prefix}` within {WAIT_LIMIT}s")


async def released_group(app, client, owner, n: int = 4) -> tuple[int, list[int]]:
    """A group of `n` created experiments, the first 2 released; (group id, all ids in order)."""
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    assert r.status_code == 201
    gid = await create(client, owner, grid(n, 2))
    maker = app.state.sessionmaker
    rec = Reconciler(app.state.settings, maker, FakeRuntime(), steps=[reconcile_groups])
    await rec.reconcile_once()
    async with session_scope(maker) as session:
        ids = (
            await session.scalars(
                select(Experiment.id)
                .where(Experiment.experiment_group_id == gid)
                .order_by(Experiment.id)
            )
        ).all()
    return gid, list(ids)


async def test_stop_waits_for_a_run_step_that_updates_its_experiment_twice(app, client, owner):
    gid, ids = await released_group(app, client, owner)
    maker = app.state.sessionmaker
    run_id = ids[0]  # released to the run step
    run_step_locked = asyncio.Event()
    stop_blocked = asyncio.Event()

    async def run_step() -> None:
        """What the run step does when it starts and observes an experiment in one go."""
        async with session_scope(maker) as session:
            exp = await session.get(Experiment, run_id)
            assert await set_status(session, exp, "scheduled")
            run_step_locked.set()
            await stop_blocked.wait()
            assert await set_status(session, exp, "starting")

    async def stop() -> int:
        await run_step_locked.wait()
        response = await client.post(f"{GROUPS}/{gid}/stop", json={}, headers=owner.headers)
        return response.status_code

    async def watch() -> None:
        await run_step_locked.wait()
        async with AsyncSession(app.state.engine) as session:
            await wait_until_blocked(session, "UPDATE experiments")
        stop_blocked.set()

    results = await asyncio.wait_for(
        asyncio.gather(run_step(), stop(), watch(), return_exceptions=True), timeout=30
    )
    assert results == [None, 200, None], results

    async with session_scope(maker) as session:
        group = await session.get(ExperimentGroup, gid)
        rows = {
            e.id: e
            for e in await session.scalars(
                select(Experiment).where(Experiment.experiment_group_id == gid)
            )
        }
    assert group.last_status == "stopped"
    # The run step committed first: its experiment left `created`, so the stop flags it for the
    # run step (which stops its workload) instead of stopping it in place.
    assert rows[run_id].last_status == "starting" and rows[run_id].stop_requested
    others = [e for i, e in rows.items() if i != run_id]
    assert [e.last_status for e in others] == ["stopped"] * 3


async def test_a_deadlock_on_stop_answers_503_with_retry_after_and_a_retry_succeeds(
    app, client, owner
):
    gid, ids = await released_group(app, client, owner)
    holder_locked = asyncio.Event()

    async def lock_against_the_order() -> None:
        """A writer breaking the lock order: an experiment, then its group FOR UPDATE."""
        async with AsyncSession(app.state.engine) as session, session.begin():
            # The backend that checks for a deadlock first is the victim: let it be the stop's
            # (default 1 s), whatever the machine's load does to the timing.
            await session.execute(text("SET LOCAL deadlock_timeout = '20s'"))
            await session.execute(
                text("SELECT id FROM experiments WHERE id = :id FOR UPDATE"), {"id": ids[-1]}
            )
            holder_locked.set()
            async with AsyncSession(app.state.engine) as watcher:
                await wait_until_blocked(watcher, "UPDATE experiments")
            await session.execute(
                text("SELECT id FROM experiment_groups WHERE id = :id FOR UPDATE"), {"id": gid}
            )

    async def stop() -> tuple[int, str | None]:
        await holder_locked.wait()
        r = await client.post(f"{GROUPS}/{gid}/stop", json={}, headers=owner.headers)
        return r.status_code, r.headers.get("Retry-After")

    results = await asyncio.wait_for(
        asyncio.gather(lock_against_the_order(), stop(), return_exceptions=True), timeout=30
    )
    # The stop is the victim: told to retry, never a 500.
    assert results == [None, (503, "1")], results
    r = await client.post(f"{GROUPS}/{gid}/stop", json={}, headers=owner.headers)
    assert r.status_code == 200
    async with session_scope(app.state.sessionmaker) as session:
        assert (await session.get(ExperimentGroup, gid)).last_status == "stopped"


async def test_bulk_stop_takes_ids_in_any_order(app, client, owner):
    gid, ids = await released_group(app, client, owner)
    body = {"ids": [ids[2], ids[0], ids[2], ids[1]]}
    r = await client.post("/api/v1/alice/p/experiments/stop", json=body, headers=owner.headers)
    assert r.status_code == 200
    async with session_scope(app.state.sessionmaker) as session:
        rows = {
            e.id: e
            for e in await session.scalars(select(Experiment).where(Experiment.id.in_(ids)))
        }
    assert [rows[i].last_status for i in ids[:3]] == ["stopped"] * 3
    assert rows[ids[3]].last_status == "created"
