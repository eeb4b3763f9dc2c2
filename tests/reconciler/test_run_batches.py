"""A reconcile pass reads what runs and what may start, not the whole queue; queued rows are
marked `scheduled` in one batch; rows held by a build in progress do not block the others."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select

from app.db import session_scope
from app.models import Experiment
from app.reconciler.loop import Reconciler
from app.reconciler.runs import reconcile_runs
from app.runtimes.fake import FakeRuntime

RUN = "version: 1\nkind: experiment\nrun:\n  cmd: echo hi\n"
BUILT = "version: 1\nkind: experiment\nbuild:\n  image: busybox\nrun:\n  cmd: echo built\n"


async def _create(client: Any, owner: Any, config: str, n: int) -> list[int]:
    ids = []
    for _ in range(n):
        r = await client.post(
            "/api/v1/alice/p/experiments", json={"config": config}, headers=owner.headers
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


async def _statuses(app: Any) -> dict[str, int]:
    async with session_scope(app.state.sessionmaker) as session:
        rows = await session.execute(
            select(Experiment.last_status, func.count()).group_by(Experiment.last_status)
        )
        return dict(rows.all())


async def test_a_pass_starts_up_to_capacity_and_marks_the_rest_scheduled(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    assert await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    await _create(client, owner, RUN, 30)
    runtime = FakeRuntime(capacity=3)
    rec = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    await rec.reconcile_once()
    assert sum(runtime.starts.values()) == 3
    assert await _statuses(app) == {"scheduled": 30}  # 3 started, 27 waiting, none `created`

    loaded: list[int] = []

    def count(target: Any, _context: Any) -> None:
        loaded.append(target.id)

    event.listen(Experiment, "load", count)
    try:
        await rec.reconcile_once()  # nothing ended: the queue is not read
    finally:
        event.remove(Experiment, "load", count)
    assert sum(runtime.starts.values()) == 3
    assert len(set(loaded)) <= 3, loaded

    for key in list(runtime.states):
        runtime.set_status(key, "succeeded", exit_code=0)
    await rec.reconcile_once()  # observes 3 ended, frees 3 slots, starts the next 3
    await rec.reconcile_once()
    assert sum(runtime.starts.values()) == 6 and max(runtime.starts.values()) == 1
    assert (await _statuses(app))["succeeded"] == 3


async def test_rows_waiting_for_a_build_do_not_hold_back_the_queue(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    gated = await _create(client, owner, BUILT, 3)  # older ids, all behind one build
    plain = await _create(client, owner, RUN, 3)
    runtime = FakeRuntime(capacity=2)
    rec = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    await rec.reconcile_once()
    started = {k.split("-")[0] + "-" + k.split("-")[1] for k in runtime.starts}
    # The build takes a slot, the oldest plain experiment the other; the gated ones wait.
    assert any(k.startswith("build-") for k in started)
    assert f"experiment-{plain[0]}" in started
    assert not any(f"experiment-{i}" in started for i in gated)
    r = await client.get(f"/api/v1/alice/p/experiments/{gated[0]}", headers=owner.headers)
    assert r.json()["last_status"] == "scheduled"


async def test_runs_that_end_before_any_pass_saw_them_free_their_slots_at_once(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    await _create(client, owner, RUN, 9)
    runtime = FakeRuntime(capacity=3)
    rec = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    await rec.reconcile_once()
    # The three end before a pass observes them running: their rows still say `scheduled`.
    for key in list(runtime.states):
        runtime.set_status(key, "succeeded", exit_code=0)
    await rec.reconcile_once()
    # One pass records the three and starts the next three (they are not mistaken for waiting).
    assert sum(runtime.starts.values()) == 6 and max(runtime.starts.values()) == 1
    assert (await _statuses(app))["succeeded"] == 3


async def test_a_run_that_ended_unseen_still_has_running_in_its_history(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    [ok, bad] = await _create(client, owner, RUN, 2)
    runtime = FakeRuntime(capacity=2)
    rec = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    await rec.reconcile_once()
    keys = sorted(runtime.states, key=lambda k: int(k.split("-")[1]))
    runtime.set_status(keys[0], "succeeded", exit_code=0)
    runtime.set_status(keys[1], "failed", exit_code=3, message="exit code 3")
    await rec.reconcile_once()
    for exp_id, end in ((ok, "succeeded"), (bad, "failed")):
        r = await client.get(
            f"/api/v1/alice/p/experiments/{exp_id}/statuses", headers=owner.headers
        )
        assert [s["status"] for s in r.json()["results"]] == [
            "created",
            "scheduled",
            "starting",
            "running",
            end,
        ]
        r = await client.get(f"/api/v1/alice/p/experiments/{exp_id}/jobs", headers=owner.headers)
        job = r.json()["results"][0]["id"]
        r = await client.get(
            f"/api/v1/alice/p/experiments/{exp_id}/jobs/{job}/statuses", headers=owner.headers
        )
        assert [s["status"] for s in r.json()["results"]][-2:] == ["running", end]
