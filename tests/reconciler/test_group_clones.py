"""Restart, resume and copy of a group's experiment respect the group's concurrency (v0 #706).

The clone joins the group without a suggestion index, waits held until the group step releases
it within the concurrency, and the group's `succeeded` waits for it. A group that is already over
still releases its clones, one slot at a time.
"""

from __future__ import annotations

import pytest

from app.reconciler.loop import Reconciler
from app.runtimes.fake import FakeRuntime
from tests.reconciler.test_groups import (
    GROUPS,
    assert_within_concurrency,
    create,
    experiments,
    finish_running,
    grid,
    group_row,
    live_keys,
)

EXPERIMENTS = "/api/v1/alice/p/experiments"


@pytest.fixture
async def reconciler(app, client, owner) -> Reconciler:
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    assert r.status_code == 201
    return Reconciler(
        app.state.settings, app.state.sessionmaker, FakeRuntime(),
        steps=list(app.state.reconciler_steps),
    )


async def passes(rec: Reconciler, gid: int, n: int = 3) -> None:
    """A few reconcile passes (release, start, observe), checking the concurrency after each."""
    for _ in range(n):
        await rec.reconcile_once()
        await assert_within_concurrency(rec, gid, 1)


def running_ids(rec: Reconciler) -> list[int]:
    return sorted(rec.runtime.specs[key].run_id for key in live_keys(rec))


async def clone(client, owner, exp_id: int, strategy: str, body: dict | None = None) -> int:
    r = await client.post(f"{EXPERIMENTS}/{exp_id}/{strategy}", json=body or {},
                          headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_restart_waits_for_the_running_experiment_of_a_concurrency_1_group(
    reconciler, client, owner
):
    rec = reconciler
    gid = await create(client, owner, grid(2, 1))
    await passes(rec, gid)
    first, second = (e.id for e in await experiments(rec, gid))
    assert running_ids(rec) == [first]
    await finish_running(rec)
    await passes(rec, gid)
    assert running_ids(rec) == [second]

    clone_id = await clone(client, owner, first, "restart")
    await passes(rec, gid)
    rows = {e.id: e for e in await experiments(rec, gid)}
    assert running_ids(rec) == [second]  # the slot is taken: the clone waits
    held = rows[clone_id]
    assert held.experiment_group_id == gid and held.suggestion_index is None
    assert held.last_status == "created" and held.original_id == first
    assert (await group_row(rec, gid)).last_status == "running"

    await finish_running(rec)
    await passes(rec, gid)
    assert running_ids(rec) == [clone_id]  # released once the slot freed
    assert (await group_row(rec, gid)).last_status == "running"  # waits for the clone
    await finish_running(rec)
    await passes(rec, gid)
    rows = await experiments(rec, gid)
    assert [e.last_status for e in rows] == ["succeeded"] * 3
    assert sorted((e.suggestion_index for e in rows), key=lambda i: (i is None, i)) == [0, 1, None]
    assert (await group_row(rec, gid)).last_status == "succeeded"
    assert set(rec.runtime.starts.values()) == {1} and len(rec.runtime.starts) == 3
    body = (await client.get(f"{GROUPS}/{gid}", headers=owner.headers)).json()
    assert body["num_experiments"] == 3 and body["num_succeeded_experiments"] == 3


async def test_clones_of_a_finished_group_run_one_slot_at_a_time(reconciler, client, owner):
    rec = reconciler
    gid = await create(client, owner, grid(1, 1))
    await passes(rec, gid)
    await finish_running(rec)
    await passes(rec, gid)
    assert (await group_row(rec, gid)).last_status == "succeeded"
    (original,) = (e.id for e in await experiments(rec, gid))

    clones = [
        await clone(client, owner, original, "restart"),
        await clone(client, owner, original, "resume"),
        await clone(client, owner, original, "copy", {"config": {"declarations": {"x": 7}}}),
    ]
    for expected in clones:
        await passes(rec, gid)
        assert running_ids(rec) == [expected]  # in id order, never two at once
        await finish_running(rec)
    await passes(rec, gid)
    rows = {e.id: e for e in await experiments(rec, gid)}
    assert [rows[i].last_status for i in clones] == ["succeeded"] * 3
    assert [rows[i].cloning_strategy for i in clones] == ["restart", "resume", "copy"]
    assert rows[clones[2]].declarations == {"x": 7}
    assert (await group_row(rec, gid)).last_status == "succeeded"  # a done group stays done
    assert len(rec.runtime.starts) == 4 and set(rec.runtime.starts.values()) == {1}


async def test_stopping_the_group_stops_a_waiting_clone(reconciler, client, owner):
    rec = reconciler
    gid = await create(client, owner, grid(1, 1))
    await passes(rec, gid)
    (original,) = (e.id for e in await experiments(rec, gid))
    clone_id = await clone(client, owner, original, "copy")
    await passes(rec, gid)
    assert running_ids(rec) == [original]
    r = await client.post(f"{GROUPS}/{gid}/stop", json={}, headers=owner.headers)
    assert r.status_code == 200
    await passes(rec, gid)
    rows = {e.id: e for e in await experiments(rec, gid)}
    assert rows[clone_id].last_status == "stopped" and rows[original].last_status == "stopped"
    assert clone_id not in {spec.run_id for spec in rec.runtime.specs.values()}  # never started
