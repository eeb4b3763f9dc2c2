"""One workload that cannot be observed, started or stopped (or one group whose pass fails) never
aborts a pass nor holds back the others (issue 15 item 4): its failure is retried with backoff,
told in its run's status message after a few attempts, and the run fails with the reason once it
has failed for PLX_WORKLOAD_RETRY_TIMEOUT seconds. On the fake runtime, SQLite and Postgres."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.db import session_scope
from app.models import ExperimentStatus, TensorboardJob, TensorboardJobStatus
from app.reconciler import groups as group_step
from app.reconciler.groups import reconcile_groups
from app.reconciler.loop import Reconciler
from app.reconciler.plugins import reconcile_plugins
from app.reconciler.retries import SURFACE_AFTER
from app.reconciler.runs import reconcile_runs
from app.runtimes.base import RuntimeError_
from app.runtimes.fake import FakeRuntime

RUN = "version: 1\nkind: experiment\nrun:\n  cmd: echo hi\n"
EXPERIMENTS = "/api/v1/alice/p/experiments"
TIMEOUT = 30.0


class Clock:
    """The retries' clock, moved by the test: backoff delays pass without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reconciler(app: Any, runtime: FakeRuntime, *steps: Any) -> tuple[Reconciler, Clock]:
    app.state.settings.workload_retry_timeout = TIMEOUT
    rec = Reconciler(
        app.state.settings, app.state.sessionmaker, runtime, steps=list(steps or [reconcile_runs])
    )
    clock = Clock()
    rec.retries.clock = clock
    return rec, clock


async def _experiments(client: Any, owner: Any, n: int) -> list[dict]:
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    made = []
    for _ in range(n):
        r = await client.post(EXPERIMENTS, json={"config": RUN}, headers=owner.headers)
        assert r.status_code == 201, r.text
        made.append(r.json())
    return made


def _key(exp: dict) -> str:
    return f"experiment-{exp['id']}-{exp['uuid'][:8]}-master-0"


async def _status(client: Any, owner: Any, exp: dict) -> str:
    r = await client.get(f"{EXPERIMENTS}/{exp['id']}", headers=owner.headers)
    return r.json()["last_status"]


async def _messages(app: Any, exp: dict) -> list[str]:
    async with session_scope(app.state.sessionmaker) as session:
        rows = await session.scalars(
            select(ExperimentStatus.message)
            .where(ExperimentStatus.experiment_id == exp["id"])
            .order_by(ExperimentStatus.id)
        )
        return [m or "" for m in rows]


async def _until_given_up(rec: Reconciler, clock: Clock, passes: int = 12) -> None:
    """Passes with the clock moved just past each backoff delay (1, 2, 4 ... s), beyond the
    retry timeout: the failure is told (after SURFACE_AFTER) before it is given up on."""
    for attempt in range(passes):
        clock.now += min(61, 2**attempt + 0.01)
        await rec.reconcile_once()


async def test_a_workload_that_cannot_be_observed_holds_back_no_other(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    exps = await _experiments(client, owner, 4)
    runtime = FakeRuntime()
    rec, clock = _reconciler(app, runtime)
    await rec.reconcile_once()  # all four start
    broken = exps[1]
    runtime.break_workload(_key(broken), operations=("observe",))
    for exp in exps:
        runtime.set_status(_key(exp), "succeeded", exit_code=0)
    await rec.reconcile_once()
    statuses = [await _status(client, owner, exp) for exp in exps]
    assert statuses == ["succeeded", "scheduled", "succeeded", "succeeded"]

    # Retried with backoff: not told before SURFACE_AFTER failures, then once, in its message.
    for attempt in range(SURFACE_AFTER - 1):
        clock.now += 2**attempt + 0.01
        await rec.reconcile_once()
    told = [m for m in await _messages(app, broken) if m.startswith("plx cannot observe")]
    assert len(told) == 1 and _key(broken) in told[0] and "Injected failure" in told[0]
    assert await _status(client, owner, broken) == "scheduled"

    await _until_given_up(rec, clock)
    assert await _status(client, owner, broken) == "failed"
    last = (await _messages(app, broken))[-1]
    assert last.startswith("plx gave up: it could not observe") and _key(broken) in last


async def test_a_workload_that_heals_goes_on_as_if_nothing_happened(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    exps = await _experiments(client, owner, 2)
    runtime = FakeRuntime()
    rec, clock = _reconciler(app, runtime)
    await rec.reconcile_once()
    runtime.break_workload(_key(exps[0]), operations=("observe",))
    for attempt in range(3):  # told, not given up on yet
        clock.now += 2**attempt + 0.01
        await rec.reconcile_once()
    runtime.heal(_key(exps[0]))
    runtime.set_status(_key(exps[0]), "succeeded", exit_code=0)
    clock.now += 61
    await rec.reconcile_once()
    assert await _status(client, owner, exps[0]) == "succeeded"
    assert _key(exps[0]) not in rec.retries and f"experiment-{exps[0]['id']}" not in rec.retries


async def test_a_workload_that_cannot_be_started_holds_back_no_other(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    exps = await _experiments(client, owner, 5)
    runtime = FakeRuntime()
    rec, clock = _reconciler(app, runtime)
    broken = exps[1]
    runtime.break_workload(_key(broken), OSError(24, "Too many open files"), operations=("start",))
    await rec.reconcile_once()
    assert sorted(runtime.starts) == sorted(_key(e) for e in exps if e is not broken)
    await rec.reconcile_once()  # within its delay: not tried again
    assert runtime.start_calls[_key(broken)] == 1

    await _until_given_up(rec, clock)
    assert await _status(client, owner, broken) == "failed"
    messages = await _messages(app, broken)
    assert any(m.startswith("plx cannot start") for m in messages), messages
    assert messages[-1].startswith("plx gave up: it could not start") and "Too many" in messages[-1]
    assert 3 <= runtime.start_calls[_key(broken)] <= 12  # backed off, not once per pass


async def test_a_transient_start_failure_is_retried_and_told_but_never_given_up(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    [exp] = await _experiments(client, owner, 1)
    runtime = FakeRuntime()
    rec, clock = _reconciler(app, runtime)
    runtime.break_workload(_key(exp), RuntimeError_("API unreachable"), operations=("start",))
    await _until_given_up(rec, clock)
    assert await _status(client, owner, exp) == "scheduled"
    assert any(m.startswith("plx cannot start") for m in await _messages(app, exp))
    runtime.heal(_key(exp))
    clock.now += 61
    await rec.reconcile_once()
    assert runtime.starts[_key(exp)] == 1


async def test_a_workload_that_cannot_be_stopped_holds_back_no_other_stop(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    exps = await _experiments(client, owner, 3)
    runtime = FakeRuntime()
    rec, clock = _reconciler(app, runtime)
    await rec.reconcile_once()
    await rec.reconcile_once()
    broken = exps[0]
    runtime.break_workload(_key(broken), operations=("stop",))
    for exp in exps[:2]:
        r = await client.post(f"{EXPERIMENTS}/{exp['id']}/stop", headers=owner.headers)
        assert r.status_code == 200
    await rec.reconcile_once()
    assert await _status(client, owner, exps[1]) == "stopped"
    assert await _status(client, owner, exps[2]) == "running"  # untouched, still observed
    assert await _status(client, owner, broken) == "running"
    await _until_given_up(rec, clock)
    assert await _status(client, owner, broken) == "failed"
    assert (await _messages(app, broken))[-1].startswith("plx gave up: it could not stop")
    runtime.heal(_key(broken))
    clock.now += 61
    await rec.reconcile_once()  # the failed run's workload is retired now that it can be
    assert _key(broken) not in runtime.states


async def test_a_failing_cleanup_after_a_stop_does_not_undo_the_stop(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    [exp] = await _experiments(client, owner, 1)
    runtime = FakeRuntime()
    rec, _ = _reconciler(app, runtime)
    await rec.reconcile_once()
    runtime.break_workload(_key(exp), operations=("cleanup",))
    await client.post(f"{EXPERIMENTS}/{exp['id']}/stop", headers=owner.headers)
    await rec.reconcile_once()
    assert await _status(client, owner, exp) == "stopped"


async def test_an_orphan_workload_that_cannot_be_retired_blocks_no_pass(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    exps = await _experiments(client, owner, 3)
    runtime = FakeRuntime()
    rec, _ = _reconciler(app, runtime)
    await rec.reconcile_once()
    orphan = exps[0]
    runtime.break_workload(_key(orphan), operations=("stop", "observe"))
    r = await client.delete(f"{EXPERIMENTS}/{orphan['id']}", headers=owner.headers)
    assert r.status_code == 204
    runtime.set_status(_key(exps[1]), "succeeded", exit_code=0)
    await rec.reconcile_once()
    assert await _status(client, owner, exps[1]) == "succeeded"
    r = await client.post(EXPERIMENTS, json={"config": RUN}, headers=owner.headers)
    await rec.reconcile_once()
    assert await _status(client, owner, r.json()) in ("scheduled", "running")
    assert any(k.startswith(f"experiment-{r.json()['id']}-") for k in runtime.starts)


async def test_a_tensorboard_that_cannot_be_observed_holds_back_no_other(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    exps = await _experiments(client, owner, 2)
    runtime = FakeRuntime()
    rec, clock = _reconciler(app, runtime, reconcile_plugins)
    for exp in exps:
        r = await client.post(f"{EXPERIMENTS}/{exp['id']}/tensorboard/start", headers=owner.headers)
        assert r.status_code == 201, r.text
    await rec.reconcile_once()
    keys = sorted(runtime.states)
    assert len(keys) == 2
    runtime.break_workload(keys[0], operations=("observe",))
    runtime.set_status(keys[1], "failed", message="tensorboard crashed")
    await rec.reconcile_once()
    async with session_scope(app.state.sessionmaker) as session:
        rows = list(await session.scalars(select(TensorboardJob).order_by(TensorboardJob.id)))
    assert [row.last_status for row in rows] == ["running", "failed"]
    await _until_given_up(rec, clock)
    async with session_scope(app.state.sessionmaker) as session:
        board = await session.get(TensorboardJob, rows[0].id)
        messages = list(
            await session.scalars(
                select(TensorboardJobStatus.message)
                .where(TensorboardJobStatus.job_id == board.id)
                .order_by(TensorboardJobStatus.id)
            )
        )
    assert board.last_status == "failed"
    assert any((m or "").startswith("plx cannot observe") for m in messages), messages
    assert messages[-1].startswith("plx gave up: it could not observe")


async def test_a_group_whose_pass_fails_holds_back_no_other_group(
    backend: str, app: Any, client: Any, owner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    content = (
        "version: 1\nkind: group\nhptuning:\n  concurrency: 2\n"
        "  matrix: {x: {values: [1, 2]}}\nrun: {cmd: echo hi}\n"
    )
    groups = []
    for _ in range(2):
        r = await client.post(
            "/api/v1/alice/p/groups", json={"content": content}, headers=owner.headers
        )
        assert r.status_code == 201, r.text
        groups.append(r.json()["id"])
    broken = groups[0]
    real = group_step.reconcile_group

    async def reconcile_group(reconciler: Any, group_id: int) -> bool:
        if group_id == broken:
            raise KeyError("a bug met by one group only")
        return await real(reconciler, group_id)

    monkeypatch.setattr(group_step, "reconcile_group", reconcile_group)
    rec, clock = _reconciler(app, FakeRuntime(), reconcile_groups)
    await rec.reconcile_once()
    r = await client.get(f"/api/v1/alice/p/groups/{groups[1]}", headers=owner.headers)
    assert r.json()["last_status"] == "running" and r.json()["num_experiments"] == 2
    await _until_given_up(rec, clock)
    r = await client.get(f"/api/v1/alice/p/groups/{broken}", headers=owner.headers)
    assert r.json()["last_status"] == "failed"
    r = await client.get(f"/api/v1/alice/p/groups/{broken}/statuses", headers=owner.headers)
    messages = [s["message"] or "" for s in r.json()["results"]]
    assert any(m.startswith("plx cannot reconcile group-") for m in messages), messages
    assert (
        messages[-1].startswith("plx gave up: it could not reconcile") and "a bug" in messages[-1]
    )
