"""The group step with the run step on a FakeRuntime: sweeps run, stop and never duplicate."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select, update

from app.db import session_scope
from app.logic.polyaxonfile import parse_polyaxonfile
from app.logic.search import make_search
from app.models import Experiment, ExperimentGroup, GroupDecision
from app.reconciler.groups import reconcile_groups
from app.reconciler.loop import Reconciler
from app.runtimes.fake import FakeRuntime
from app.services import groups as service

GROUPS = "/api/v1/alice/p/groups"
RUNNING = set(service.RUNNING)

SEED = """
version: 1
kind: group
hptuning:
  concurrency: 5
  random_search: {n_experiments: 10}
  matrix:
    learning_rate: {linspace: '0.001:0.1:5'}
    dropout: {values: [0.25, 0.3]}
    activation: {values: [relu, sigmoid]}
declarations: {batch_size: 128}
run:
  cmd: python3 model.py --lr={{ learning_rate }} --dropout={{ dropout }} --a={{ activation }}
"""


def grid(n: int, concurrency: int, extra: str = "") -> str:
    values = ", ".join(str(i) for i in range(n))
    return f"""
version: 1
kind: group
hptuning:
  concurrency: {concurrency}
  matrix: {{x: {{values: [{values}]}}}}
{extra}
run: {{cmd: "echo {{{{ x }}}}"}}
"""


@pytest.fixture
async def rec(app, client, owner):
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    assert r.status_code == 201
    runtime = FakeRuntime()
    return Reconciler(app.state.settings, app.state.sessionmaker, runtime,
                      steps=list(app.state.reconciler_steps))


async def create(client, owner, content: str) -> int:
    r = await client.post(GROUPS, json={"content": content}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def experiments(rec, gid: int) -> list[Experiment]:
    async with session_scope(rec.sessionmaker) as session:
        return list(
            (
                await session.scalars(
                    select(Experiment)
                    .where(Experiment.experiment_group_id == gid)
                    .order_by(Experiment.suggestion_index)
                )
            ).all()
        )


async def group_row(rec, gid: int) -> ExperimentGroup:
    async with session_scope(rec.sessionmaker) as session:
        return await session.get(ExperimentGroup, gid)


def live_keys(rec) -> list[str]:
    return [k for k, s in rec.runtime.states.items() if not s.done]


async def finish_running(rec, status: str = "succeeded", metric=None) -> list[int]:
    """End every live workload; `metric(experiment_id)` gives a last_metric to store first."""
    ended = []
    for key in live_keys(rec):
        run_id = rec.runtime.specs[key].run_id
        if metric is not None:
            async with session_scope(rec.sessionmaker) as session:
                await session.execute(
                    update(Experiment).where(Experiment.id == run_id)
                    .values(last_metric=metric(run_id))
                )
        rec.runtime.set_status(key, status)
        ended.append(run_id)
    return ended


async def assert_within_concurrency(rec, gid: int, concurrency: int) -> None:
    rows = await experiments(rec, gid)
    active = [e for e in rows if e.last_status in RUNNING]
    assert len(active) <= concurrency
    assert len(live_keys(rec)) <= concurrency


async def drive(rec, gid: int, *, concurrency: int, metric=None, max_passes: int = 200) -> None:
    for _ in range(max_passes):
        await rec.reconcile_once()
        await assert_within_concurrency(rec, gid, concurrency)
        group = await group_row(rec, gid)
        if group.last_status in ("succeeded", "failed", "stopped"):
            return
        await rec.reconcile_once()  # observe the started workloads as running
        await assert_within_concurrency(rec, gid, concurrency)
        await finish_running(rec, metric=metric)
    raise AssertionError("the group did not finish")


async def test_seed_group_random_10_of_20_within_concurrency(rec, client, owner):
    gid = await create(client, owner, SEED)
    await drive(rec, gid, concurrency=5)
    rows = await experiments(rec, gid)
    assert len(rows) == 10
    points = {(e.declarations["learning_rate"], e.declarations["dropout"],
               e.declarations["activation"]) for e in rows}
    assert len(points) == 10
    assert all(e.declarations["batch_size"] == 128 for e in rows)
    assert sorted(e.suggestion_index for e in rows) == list(range(10))
    assert all(e.last_status == "succeeded" for e in rows)
    # every workload started exactly once, with the suggestion rendered into its command
    assert len(rec.runtime.starts) == 10 and set(rec.runtime.starts.values()) == {1}
    for spec in rec.runtime.specs.values():
        assert spec.command.startswith("python3 model.py --lr=")
        assert spec.unique_name == f"alice.p.{gid}.{spec.run_id}"

    r = await client.get(f"{GROUPS}/{gid}", headers=owner.headers)
    body = r.json()
    assert body["last_status"] == "succeeded" and body["num_experiments"] == 10
    assert body["num_succeeded_experiments"] == 10 and body["num_pending_experiments"] == 0
    assert body["hptuning"]["seed"] is None
    r = await client.get(f"{GROUPS}/{gid}/statuses", headers=owner.headers)
    assert [s["status"] for s in r.json()["results"]] == ["created", "running", "succeeded"]
    r = await client.get("/api/v1/alice/p", headers=owner.headers)
    assert r.json()["num_experiments"] == 10 and r.json()["num_experiment_groups"] == 1


async def test_failures_are_counted_and_the_group_still_succeeds(rec, client, owner):
    gid = await create(client, owner, grid(3, 3))
    await rec.reconcile_once()
    await rec.reconcile_once()
    keys = sorted(live_keys(rec))
    assert len(keys) == 3
    rec.runtime.set_status(keys[0], "failed", exit_code=2)
    await drive(rec, gid, concurrency=3)
    body = (await client.get(f"{GROUPS}/{gid}", headers=owner.headers)).json()
    assert body["last_status"] == "succeeded"
    assert body["num_failed_experiments"] == 1 and body["num_succeeded_experiments"] == 2


async def test_patch_concurrency_takes_effect_at_once(rec, client, owner):
    gid = await create(client, owner, grid(6, 1))
    await rec.reconcile_once()
    await rec.reconcile_once()
    assert len(live_keys(rec)) == 1
    r = await client.patch(f"{GROUPS}/{gid}", json={"concurrency": 3}, headers=owner.headers)
    assert r.status_code == 200
    await rec.reconcile_once()
    await rec.reconcile_once()
    assert len(live_keys(rec)) == 3
    r = await client.patch(f"{GROUPS}/{gid}", json={"concurrency": 2}, headers=owner.headers)
    await finish_running(rec)
    await drive(rec, gid, concurrency=2)
    assert (await group_row(rec, gid)).last_status == "succeeded"


async def test_stop_ends_every_experiment_and_the_group(rec, client, owner):
    gid = await create(client, owner, grid(6, 2))
    await rec.reconcile_once()
    await rec.reconcile_once()
    assert len(live_keys(rec)) == 2
    r = await client.post(f"{GROUPS}/{gid}/stop", json={}, headers=owner.headers)
    assert r.status_code == 200
    await rec.reconcile_once()
    await rec.reconcile_once()
    rows = await experiments(rec, gid)
    assert len(rows) == 6 and {e.last_status for e in rows} == {"stopped"}
    assert live_keys(rec) == []
    assert (await group_row(rec, gid)).last_status == "stopped"
    # stop of a finished group: 200, nothing changes
    r = await client.post(f"{GROUPS}/{gid}/stop", headers=owner.headers)
    assert r.status_code == 200
    r = await client.get(f"{GROUPS}/{gid}/statuses", headers=owner.headers)
    assert [s["status"] for s in r.json()["results"]] == ["created", "running", "stopped"]


async def test_stop_pending_leaves_running_experiments(rec, client, owner):
    gid = await create(client, owner, grid(5, 2))
    await rec.reconcile_once()
    await rec.reconcile_once()
    r = await client.post(f"{GROUPS}/{gid}/stop", json={"pending": True}, headers=owner.headers)
    assert r.status_code == 200
    await rec.reconcile_once()
    statuses = Counter(e.last_status for e in await experiments(rec, gid))
    assert statuses == {"running": 2, "stopped": 3}


async def test_threshold_early_stopping_in_matrix_order(rec, client, owner):
    extra = "  early_stopping:\n    - {metric: loss, value: 0.5, optimization: minimize}"
    gid = await create(client, owner, grid(6, 1, extra))
    await rec.reconcile_once()
    await rec.reconcile_once()
    await finish_running(rec, metric=lambda _: {"loss": 0.9})  # x=0: above the threshold
    await rec.reconcile_once()
    await rec.reconcile_once()
    await finish_running(rec, metric=lambda _: {"loss": 0.4})  # x=1 crosses it
    await rec.reconcile_once()
    rows = await experiments(rec, gid)
    assert [e.last_status for e in rows] == ["succeeded", "succeeded"] + ["stopped"] * 4
    assert (await group_row(rec, gid)).last_status == "stopped"
    r = await client.get(f"{GROUPS}/{gid}/decisions", headers=owner.headers)
    [decision] = r.json()["results"]
    assert decision["kind"] == "early_stopping"
    assert decision["experiment_ids"] == [e.id for e in rows[2:]]
    assert decision["inputs"]["experiment"] == rows[1].id
    assert decision["inputs"]["threshold"] == 0.5 and "loss" in decision["reason"]


async def test_policy_stops_running_experiment(rec, client, owner):
    extra = ("  early_stopping_policy: {kind: median, metric: acc, min_trials: 2}")
    gid = await create(client, owner, grid(3, 3, extra))
    await rec.reconcile_once()
    await rec.reconcile_once()
    rows = await experiments(rec, gid)
    from app.models import ExperimentMetric

    async with session_scope(rec.sessionmaker) as session:
        for exp, acc in zip(rows, (0.9, 0.8, 0.1), strict=True):
            session.add(ExperimentMetric(experiment_id=exp.id, values={"acc": acc, "step": 1}))
    await rec.reconcile_once()
    await rec.reconcile_once()
    rows = await experiments(rec, gid)
    assert [e.last_status for e in rows] == ["running", "running", "stopped"]
    r = await client.get(f"{GROUPS}/{gid}/decisions", headers=owner.headers)
    [decision] = r.json()["results"]
    assert decision["kind"] == "early_stopping_median"
    assert decision["experiment_ids"] == [rows[2].id]


HYPERBAND = """
version: 1
kind: group
hptuning:
  concurrency: 4
  seed: 7
  hyperband:
    max_iter: 9
    eta: 3
    resource: {name: epochs, type: int}
    metric: {name: loss, optimization: minimize}
  matrix: {lr: {uniform: '0:1'}}
run: {cmd: "train --lr={{ lr }} --epochs={{ epochs }}"}
"""


async def test_hyperband_creates_the_planned_rungs(rec, client, owner):
    r = await client.post(f"{GROUPS}/plan", json={"content": HYPERBAND}, headers=owner.headers)
    planned = r.json()
    gid = await create(client, owner, HYPERBAND)
    await drive(rec, gid, concurrency=4, metric=lambda i: {"loss": 1.0 / i})
    rows = await experiments(rec, gid)
    assert len(rows) == planned["num_experiments"] == 22
    by_iteration: dict[int, list[Experiment]] = {}
    for e in rows:
        by_iteration.setdefault(e.iteration, []).append(e)
    assert [len(by_iteration[i]) for i in sorted(by_iteration)] == planned["iterations"]
    resources = [sorted({e.declarations["epochs"] for e in by_iteration[i]})
                 for i in sorted(by_iteration)]
    assert resources == [[1], [3], [9], [3], [9], [9]]
    ids = {e.id: e for e in rows}
    for e in rows:
        assert f"--epochs={e.declarations['epochs']}" in e.config["run"]["cmd"]
        if e.iteration in (1, 2, 4):
            original = ids[e.original_id]
            assert original.declarations["lr"] == e.declarations["lr"]
            assert e.cloning_strategy == "restart"
        else:
            assert e.original_id is None
    group = await group_row(rec, gid)
    assert group.last_status == "succeeded" and group.current_iteration == 6
    clone = next(e for e in rows if e.original_id)
    r = await client.get(f"/api/v1/alice/p/experiments/{clone.id}", headers=owner.headers)
    assert r.json()["original"] == f"alice.p.{gid}.{clone.original_id}"
    r = await client.get(f"/api/v1/alice/p/experiments?group={gid}&limit=100",
                         headers=owner.headers)
    listed = {e["id"]: e["original"] for e in r.json()["results"]}
    assert listed[clone.id] == f"alice.p.{gid}.{clone.original_id}"


BO = """
version: 1
kind: group
hptuning:
  concurrency: 3
  bo:
    n_initial_trials: 3
    n_iterations: 3
    metric: {name: loss, optimization: minimize}
    utility_function: {acquisition_function: ucb, kappa: 1.2}
  matrix:
    lr: {uniform: '0:1'}
    units: {values: [8, 16, 32]}
run: {cmd: "train --lr={{ lr }} --units={{ units }}"}
"""


async def test_bo_initial_trials_then_one_per_iteration(rec, client, owner):
    gid = await create(client, owner, BO)
    await drive(rec, gid, concurrency=3, metric=lambda i: {"loss": (i % 7) / 10})
    rows = await experiments(rec, gid)
    assert len(rows) == 6
    assert Counter(e.iteration for e in rows) == {0: 3, 1: 1, 2: 1, 3: 1}
    group = await group_row(rec, gid)
    assert group.last_status == "succeeded" and group.current_iteration == 4


async def test_interrupted_materialisation_resumes_without_duplicates(rec, client, owner):
    gid = await create(client, owner, grid(25, 2))
    group = await group_row(rec, gid)
    group_file = parse_polyaxonfile(group.spec, expected_kind="group")
    config = group_file.hptuning
    # A first batch is committed ...
    async with session_scope(rec.sessionmaker) as session:
        group = await session.get(ExperimentGroup, gid)
        await service.materialise(session, group, config, group_file, limit=7)
    # ... the next one dies before its commit ...
    with pytest.raises(RuntimeError):
        async with session_scope(rec.sessionmaker) as session:
            group = await session.get(ExperimentGroup, gid)
            await service.materialise(session, group, config, group_file, limit=5)
            raise RuntimeError("killed")
    # ... and a writer with a stale view repeats rows that exist: the key skips them.
    async with session_scope(rec.sessionmaker) as session:
        group = await session.get(ExperimentGroup, gid)
        stale = service.Existing([], {})
        suggestions = list(make_search(config, group.seed).iter_suggestions(0, 9))
        inserted = await service.insert_suggestions(
            session, group, group_file, suggestions, stale, resume=False
        )
        assert len(inserted) == 2  # indices 7 and 8 were missing
    await drive(rec, gid, concurrency=2)
    rows = await experiments(rec, gid)
    assert [e.suggestion_index for e in rows] == list(range(25))
    assert [e.declarations["x"] for e in rows] == list(range(25))
    async with session_scope(rec.sessionmaker) as session:
        n = await session.scalar(select(func.count()).select_from(Experiment))
    assert n == 25
    assert (await group_row(rec, gid)).last_status == "succeeded"


async def test_group_without_run_is_tracking_only(rec, client, owner):
    content = "version: 1\nkind: group\nhptuning: {matrix: {x: {values: [1, 2]}}}\n"
    gid = await create(client, owner, content)
    await rec.reconcile_once()
    rows = await experiments(rec, gid)
    assert len(rows) == 2 and rec.runtime.starts == Counter()
    assert (await group_row(rec, gid)).last_status == "running"
    async with session_scope(rec.sessionmaker) as session:
        from app.services.statuses import set_status

        for e in rows:
            await set_status(session, await session.get(Experiment, e.id), "succeeded")
    await rec.reconcile_once()
    assert (await group_row(rec, gid)).last_status == "succeeded"


async def test_decisions_of_a_failed_group(rec, client, owner):
    gid = await create(client, owner, grid(2, 1))
    async with session_scope(rec.sessionmaker) as session:
        await session.execute(
            update(ExperimentGroup).where(ExperimentGroup.id == gid)
            .values(hptuning={"matrix": {}})
        )
    await reconcile_groups(rec)
    group = await group_row(rec, gid)
    assert group.last_status == "failed"
    async with session_scope(rec.sessionmaker) as session:
        decision = await session.scalar(select(GroupDecision))
    assert decision.kind == "failed" and "matrix" in decision.reason


async def test_group_experiments_routes(rec, client, owner):
    gid = await create(client, owner, grid(3, 3))
    await rec.reconcile_once()
    r = await client.get(f"{GROUPS}/{gid}/experiments", headers=owner.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["count"] == 3
    for e in page["results"]:
        assert e["unique_name"] == f"alice.p.{gid}.{e['id']}"
        assert e["experiment_group"] == f"alice.p.{gid}"
    r = await client.get("/api/v1/alice/p/experiments", params={"group": gid},
                         headers=owner.headers)
    assert r.json()["count"] == 3
    r = await client.get(f"{GROUPS}/{gid}/experiments", params={"declarations": "true"},
                         headers=owner.headers)
    assert sorted(e["declarations"]["x"] for e in r.json()["results"]) == [0, 1, 2]
    r = await client.get(f"{GROUPS}/{gid + 100}/experiments", headers=owner.headers)
    assert r.status_code == 404
    # deleting the group removes its experiments
    r = await client.delete(f"{GROUPS}/{gid}", headers=owner.headers)
    assert r.status_code == 204
    assert await experiments(rec, gid) == []


async def test_threshold_after_everything_started_does_not_stop_the_group(rec, client, owner):
    extra = "  early_stopping:\n    - {metric: loss, value: 0.5, optimization: minimize}"
    gid = await create(client, owner, grid(2, 2, extra))
    await rec.reconcile_once()
    await rec.reconcile_once()
    await finish_running(rec, metric=lambda _: {"loss": 0.1})
    await rec.reconcile_once()
    await rec.reconcile_once()
    assert (await group_row(rec, gid)).last_status == "succeeded"
