"""A reconcile pass reads what runs and what may start, not the whole queue; queued rows are
marked `scheduled` in one batch; rows held by a build in progress do not block the others."""

from __future__ import annotations

import collections
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


def _count_statements(app: Any) -> tuple[list[str], Any]:
    seen: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()[:3]).upper())

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    return seen, lambda: event.remove(engine, "before_cursor_execute", on_execute)


async def test_starts_and_observations_are_written_a_chunk_at_a_time(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    ids = await _create(client, owner, RUN, 40)
    runtime = FakeRuntime()
    rec = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    seen, stop = _count_statements(app)
    try:
        await rec.reconcile_once()
    finally:
        stop()
    assert sorted(int(k.split("-")[1]) for k in runtime.starts) == ids
    assert max(runtime.starts.values()) == 1
    # One run at a time took about 15 statements each (600 here); a chunk of runs takes about a
    # dozen (Postgres: 8 chunks here, one per concurrent action; SQLite: one).
    assert len(seen) < 100, sorted(collections.Counter(seen).items())
    tokens = {spec.env["PLX_TOKEN"] for spec in runtime.specs.values()}
    assert len(tokens) == 40  # a token of its own for each run

    for key in list(runtime.states):
        runtime.set_status(key, "succeeded", exit_code=0)
    seen, stop = _count_statements(app)
    try:
        await rec.reconcile_once()
    finally:
        stop()
    assert await _statuses(app) == {"succeeded": 40}
    assert len(seen) < 100, sorted(collections.Counter(seen).items())
    r = await client.get(f"/api/v1/alice/p/experiments/{ids[-1]}/statuses", headers=owner.headers)
    assert [s["status"] for s in r.json()["results"]] == [
        "created",
        "scheduled",
        "starting",
        "running",
        "succeeded",
    ]


async def test_a_run_that_breaks_its_chunk_does_not_hold_back_the_others(
    backend: str, app: Any, client: Any, owner: Any, monkeypatch: Any, caplog: Any
) -> None:
    from app.reconciler import starts

    await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    ids = await _create(client, owner, RUN, 6)
    broken = ids[2]
    real_spec = starts.workload_spec

    def spec(settings: Any, caps: Any, kind: str, row: Any, **kwargs: Any) -> Any:
        if row.id == broken:
            raise ValueError("a bug met by one row only")
        return real_spec(settings, caps, kind, row, **kwargs)

    monkeypatch.setattr(starts, "workload_spec", spec)
    runtime = FakeRuntime()
    rec = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    # The retry clock stands still until the test moves it: a slow machine must not let the
    # backoff delay pass between two passes.
    frozen = rec.retries.clock()
    rec.retries.clock = lambda: frozen
    await rec.reconcile_once()
    started = sorted(int(k.split("-")[1]) for k in runtime.starts)
    assert started == [i for i in ids if i != broken]
    assert "a bug met by one row only" in caplog.text
    r = await client.get(f"/api/v1/alice/p/experiments/{broken}", headers=owner.headers)
    assert r.json()["last_status"] in ("created", "scheduled")  # its writes rolled back

    monkeypatch.setattr(starts, "workload_spec", real_spec)  # fixed: the next try starts it
    await rec.reconcile_once()  # within its backoff delay: not tried yet
    assert not any(f"-{broken}-" in k for k in runtime.specs)
    later = rec.retries.clock() + 1.5
    rec.retries.clock = lambda: later
    await rec.reconcile_once()
    assert runtime.starts.get(next(k for k in runtime.specs if f"-{broken}-" in k)) == 1


async def test_a_pass_where_nothing_changed_locks_and_writes_nothing(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    await _create(client, owner, RUN, 10)
    runtime = FakeRuntime()
    rec = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    await rec.reconcile_once()  # starts all ten
    await rec.reconcile_once()  # observes them running
    assert await _statuses(app) == {"running": 10}
    statements: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        await rec.reconcile_once()  # the workloads still run: nothing to observe
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    assert not [
        s for s in statements if "FOR " in s.upper() or s.split()[0] in ("UPDATE", "INSERT")
    ]
    assert len(statements) < 12, statements

    runtime.set_status(next(iter(runtime.states)), "failed", exit_code=1, message="exit code 1")
    await rec.reconcile_once()  # one changed: observed
    assert await _statuses(app) == {"running": 9, "failed": 1}
