"""Key order of JSON read back from the database (issue 15, item 2).

A sweep is the product of its matrix in the file's key order (v0), and random, hyperband and BO
points are drawn parameter by parameter in that order. Postgres JSONB re-sorts object keys, so a
group rebuilt from a JSONB column swept in another order than on SQLite. Every test here runs on
both backends and compares with a reference computed from the file as sent (what
`POST .../groups/plan` and a restart after the fix see): the same experiments in the same order,
with their declarations, configs and the answers' objects in the order the user wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from alembic import command
from sqlalchemy import JSON, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings
from app.db import session_scope
from app.logic.search import DONE_STATUSES, Trial, make_search, suggest
from app.migrate import alembic_config, upgrade
from app.models import Base, Experiment, ExperimentGroup
from app.models.base import QueryJSONType
from app.reconciler.groups import _load
from app.reconciler.loop import Reconciler
from app.runtimes.fake import FakeRuntime
from app.services.groups import check_group
from tests.conftest import POSTGRES_URL, _recreate_database

PROJECT = "/api/v1/alice/p"
GROUPS = f"{PROJECT}/groups"

GRID = """
version: 1
kind: group
hptuning:
  concurrency: 2
  grid_search: {n_experiments: 5}
  matrix:
    zeta: {values: [1, 2, 3]}
    alpha: {values: [x, y]}
    mid: {range: '0:2:1'}
declarations: {steps: 10, batch: 32}
run: {cmd: "train --zeta={{ zeta }} --alpha={{ alpha }} --mid={{ mid }}"}
"""

RANDOM = """
version: 1
kind: group
hptuning:
  concurrency: 3
  seed: 11
  random_search: {n_experiments: 6}
  matrix:
    zeta: {uniform: '0:1'}
    alpha: {values: [x, y, z]}
    beta: {logspace: '0:2:5'}
    mid: {range: '0:4:1'}
run: {cmd: "train {{ zeta }} {{ alpha }} {{ beta }} {{ mid }}"}
"""

HYPERBAND = """
version: 1
kind: group
hptuning:
  concurrency: 4
  seed: 5
  hyperband:
    max_iter: 9
    eta: 3
    resource: {name: epochs, type: int}
    metric: {name: loss, optimization: minimize}
  matrix:
    zeta: {uniform: '0:1'}
    alpha: {values: [x, y, z]}
run: {cmd: "train --zeta={{ zeta }} --alpha={{ alpha }} --epochs={{ epochs }}"}
"""

BO = """
version: 1
kind: group
hptuning:
  concurrency: 3
  seed: 3
  bo:
    n_initial_trials: 3
    n_iterations: 3
    metric: {name: loss, optimization: minimize}
    utility_function: {acquisition_function: ucb, kappa: 1.2}
  matrix:
    zeta: {uniform: '0:1'}
    alpha: {values: [4, 8, 16]}
    beta: {uniform: '0:1'}
run: {cmd: "train --zeta={{ zeta }} --alpha={{ alpha }} --beta={{ beta }}"}
"""


def loss(params: dict[str, Any]) -> float:
    """A metric of the point only (not of ids or timing), so every run reports the same."""
    numbers = [float(v) for v in params.values() if isinstance(v, int | float)]
    return round(sum((i + 1) * v for i, v in enumerate(numbers)) % 1.0, 6)


def ordered(value: Any) -> str:
    """Compare with key order: two equal dicts in another order give another text."""
    return json.dumps(value)


@pytest.fixture
async def rec(app, client, owner):
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    assert r.status_code == 201
    return Reconciler(app.state.settings, app.state.sessionmaker, FakeRuntime(),
                      steps=list(app.state.reconciler_steps))


async def create(client, owner, content: str) -> dict[str, Any]:
    r = await client.post(GROUPS, json={"content": content}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def drive(rec, gid: int) -> list[Experiment]:
    """Run the group to its end; each experiment reports `loss(declarations)`."""
    for _ in range(200):
        await rec.reconcile_once()
        for key, state in list(rec.runtime.states.items()):
            if state.done:
                continue
            run_id = rec.runtime.specs[key].run_id
            async with session_scope(rec.sessionmaker) as session:
                exp = await session.get(Experiment, run_id)
                await session.execute(
                    update(Experiment).where(Experiment.id == run_id)
                    .values(last_metric={"loss": loss(exp.declarations)})
                )
            rec.runtime.set_status(key, "succeeded")
        async with session_scope(rec.sessionmaker) as session:
            group = await session.get(ExperimentGroup, gid)
            if group.last_status in ("succeeded", "failed", "stopped"):
                break
    else:
        raise AssertionError("the group did not finish")
    async with session_scope(rec.sessionmaker) as session:
        rows = await session.scalars(
            select(Experiment).where(Experiment.experiment_group_id == gid)
            .order_by(Experiment.suggestion_index)
        )
        return list(rows.all())


def reference(content: str, seed: int) -> list[tuple[int, int, dict[str, Any]]]:
    """(index, iteration, params) of the whole sweep, from the file as sent: every suggestion
    succeeds at once with `loss(its declarations)`."""
    checked = check_group(content, max_experiments=1000)
    config = checked.hptuning
    static = checked.file.raw.get("declarations") or {}
    history: list[Trial] = []
    out = []
    for _ in range(100):
        result = suggest(config, seed=seed, history=history, limit=None)
        for s in result.suggestions:
            out.append((s.index, s.iteration, dict(s.params)))
            params = {**s.params, **static}
            history.append(Trial(index=s.index, params=s.params, status="succeeded",
                                 metric=loss(params), iteration=s.iteration,
                                 original_index=s.original_index))
        if result.finished:
            return out
    raise AssertionError("the reference sweep did not finish")


def assert_same_sweep(rows: list[Experiment], expected: list[tuple[int, int, dict]]) -> None:
    got = [(e.suggestion_index, e.iteration or 0,
            {k: e.declarations[k] for k in expected[0][2]}) for e in rows]
    assert [(i, it, ordered(p)) for i, it, p in got] == [
        (i, it, ordered(p)) for i, it, p in expected
    ]


async def test_grid_truncation_is_the_product_in_file_order(rec, client, owner):
    body = await create(client, owner, GRID)
    assert list(body["hptuning"]["matrix"]) == ["zeta", "alpha", "mid"]
    rows = await drive(rec, body["id"])
    points = [(e.declarations["zeta"], e.declarations["alpha"], e.declarations["mid"])
              for e in rows]
    assert points == [(1, "x", 0), (1, "x", 1), (1, "y", 0), (1, "y", 1), (2, "x", 0)]
    assert_same_sweep(rows, reference(GRID, 0))
    # file order in what is stored and answered: declarations, rendered config, command
    for e in rows:
        assert list(e.declarations) == ["zeta", "alpha", "mid", "steps", "batch"]
        assert list(e.config["declarations"]) == list(e.declarations)
    r = await client.get(f"{PROJECT}/experiments/{rows[0].id}", headers=owner.headers)
    assert list(r.json()["declarations"]) == ["zeta", "alpha", "mid", "steps", "batch"]
    r = await client.get(f"{PROJECT}/experiments?group={body['id']}&declarations=true",
                         headers=owner.headers)
    for row in r.json()["results"]:
        assert list(row["declarations"]) == ["zeta", "alpha", "mid", "steps", "batch"]
    starts = sorted(rec.runtime.specs.values(), key=lambda s: s.run_id)
    assert starts[0].command == "train --zeta=1 --alpha=x --mid=0"


@pytest.mark.parametrize("content", [GRID, RANDOM, HYPERBAND, BO],
                         ids=["grid", "random", "hyperband", "bo"])
async def test_created_sweep_equals_the_plan_of_the_file(rec, client, owner, content):
    body = await create(client, owner, content)
    r = await client.post(f"{GROUPS}/plan", json={"content": content}, headers=owner.headers)
    plan = r.json()
    async with session_scope(rec.sessionmaker) as session:
        seed = (await session.get(ExperimentGroup, body["id"])).seed
    rows = await drive(rec, body["id"])
    expected = reference(content, seed)
    assert len(rows) == len(expected) == plan["num_experiments"]
    assert_same_sweep(rows, expected)
    assert all(e.last_status in DONE_STATUSES for e in rows)


@pytest.mark.parametrize("content", [GRID, RANDOM, HYPERBAND, BO],
                         ids=["grid", "random", "hyperband", "bo"])
async def test_group_reloaded_from_the_database_plans_as_the_file(rec, client, owner, content):
    """What a restarted reconciler rebuilds from the row is what the file says, in its order."""
    body = await create(client, owner, content)
    fresh = check_group(content, max_experiments=1000)
    async with session_scope(rec.sessionmaker) as session:
        group = await session.get(ExperimentGroup, body["id"])
        _, config = _load(group)
        seed, spec = group.seed, group.spec
    assert ordered(config.to_dict()) == ordered(fresh.hptuning.to_dict())
    assert ordered(spec) == ordered(fresh.file.to_dict())
    assert ordered(body["hptuning"]) == ordered(fresh.hptuning.to_dict())
    r = await client.get(f"{GROUPS}/{body['id']}", headers=owner.headers)
    assert ordered(r.json()["hptuning"]) == ordered(fresh.hptuning.to_dict())
    if config.search_algorithm in ("grid", "random"):
        got = [ordered(s.params) for s in make_search(config, seed).iter_suggestions(0, None)]
        want = [ordered(s.params)
                for s in make_search(fresh.hptuning, seed).iter_suggestions(0, None)]
        assert got == want


async def test_experiment_and_job_objects_keep_the_written_order(rec, client, owner):
    content = {
        "version": 1, "kind": "experiment",
        "declarations": {"zz": 1, "aa": {"y": 2, "b": 3}, "mm": "v"},
        "environment": {"resources": {"memory": {"requests": 512}, "cpu": {"requests": 1}}},
        "run": {"cmd": "echo {{ zz }} {{ mm }}"},
    }
    r = await client.post(f"{PROJECT}/experiments",
                          json={"config": content, "declarations": {"q": 1, "c": 2}},
                          headers=owner.headers)
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    r = await client.get(f"{PROJECT}/experiments/{eid}", headers=owner.headers)
    exp = r.json()
    assert list(exp["config"]["environment"]["resources"]) == ["memory", "cpu"]
    assert list(exp["declarations"]) == ["q", "c", "zz", "aa", "mm"]
    assert list(exp["declarations"]["aa"]) == ["y", "b"]
    r = await client.post(f"{PROJECT}/experiments/{eid}/metrics",
                          json={"values": {"zloss": 0.5, "acc": 0.9}}, headers=owner.headers)
    assert r.status_code == 201, r.text
    r = await client.get(f"{PROJECT}/experiments/{eid}/metrics", headers=owner.headers)
    assert list(r.json()["results"][0]["values"]) == ["zloss", "acc"]

    job = {"version": 1, "kind": "job",
           "environment": {"resources": {"memory": {"requests": 5}, "cpu": {"requests": 1}}},
           "build": {"image": "busybox"}, "run": {"cmd": "echo"}}
    r = await client.post(f"{PROJECT}/jobs", json={"config": job}, headers=owner.headers)
    assert r.status_code == 201, r.text
    r = await client.get(f"{PROJECT}/jobs/{r.json()['id']}", headers=owner.headers)
    assert list(r.json()["config"]["environment"]["resources"]) == ["memory", "cpu"]


async def test_json_filters_and_sorts_work_on_both_column_kinds(rec, client, owner):
    """`declarations.<k>` reads a `json` column, `metric.<k>` and `tags` JSONB ones."""
    body = await create(client, owner, GRID)
    rows = await drive(rec, body["id"])
    url = f"{PROJECT}/experiments?group={body['id']}&limit=100"

    async def ids(query: str, sort: str | None = None) -> list[int]:
        r = await client.get(url, params={"query": query, **({"sort": sort} if sort else {})},
                             headers=owner.headers)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["results"]]

    by_alpha = sorted(e.id for e in rows if e.declarations["alpha"] == "y")
    assert sorted(await ids("declarations.alpha:y")) == by_alpha
    assert sorted(await ids("declarations.zeta:1|2")) == sorted(e.id for e in rows)
    best = sorted(rows, key=lambda e: (e.last_metric["loss"], e.id))
    low = [e.id for e in best if e.last_metric["loss"] < 0.5]
    assert sorted(await ids("metric.loss:<0.5")) == sorted(low)
    got = await ids("status:succeeded", sort="metric.loss")
    assert [next(e for e in rows if e.id == i).last_metric["loss"] for i in got] == [
        e.last_metric["loss"] for e in best
    ]
    r = await client.patch(f"{PROJECT}/experiments/{rows[0].id}", json={"tags": ["b", "a"]},
                           headers=owner.headers)
    assert r.status_code == 200 and r.json()["tags"] == ["b", "a"]
    assert await ids("tags:a") == [rows[0].id]


def _column_types(url: str) -> dict[tuple[str, str], str]:
    async def read() -> dict[tuple[str, str], str]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            rows = await conn.execute(text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = 'public' AND data_type IN ('json', 'jsonb')"
            ))
            out = {(t, c): d for t, c, d in rows.all()}
        await engine.dispose()
        return out

    return asyncio.run(read())


def _run_sql(url: str, *statements: str) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_async_engine(url)
        results = []
        async with engine.begin() as conn:
            for statement in statements:
                result = await conn.execute(text(statement))
                results.append(result.all() if result.returns_rows else None)
        await engine.dispose()
        return results

    return asyncio.run(run())


def test_migration_keeps_values_and_leaves_jsonb_only_where_sql_needs_it():
    if not POSTGRES_URL:
        pytest.skip("PLX_TEST_POSTGRES_URL is not set")
    base = make_url(POSTGRES_URL)
    name = f"{base.database}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_json_mig"
    admin = base.set(database="postgres").render_as_string(hide_password=False)
    asyncio.run(_recreate_database(admin, name))
    url = base.set(database=name).render_as_string(hide_password=False)
    settings = Settings(database_url=url)
    upgrade(settings, "0004_active_run_index")
    hptuning = {"matrix": {"zeta": {"values": [1, 2]}, "alpha": {"values": ["x"]}}}
    _run_sql(
        url,
        "INSERT INTO users (username, password_hash, is_superuser, is_active, created_at)"
        " VALUES ('u', 'x', false, true, now())",
        "INSERT INTO projects (uuid, created_at, updated_at, user_id, name, is_public, tags)"
        " VALUES ('p1', now(), now(), 1, 'p', true, '[\"b\", \"a\"]')",
        "INSERT INTO experiment_groups (uuid, created_at, updated_at, user_id, project_id,"
        " group_type, current_iteration, materialized_count, suggestions_done, stop_requested,"
        f" hptuning) VALUES ('g1', now(), now(), 1, 1, 'study', 0, 0, false, false,"
        f" '{json.dumps(hptuning)}')",
    )
    upgrade(settings)
    types = _column_types(url)
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, JSON):
                queried = column.type is QueryJSONType
                assert types[(table.name, column.name)] == ("jsonb" if queried else "json"), (
                    table.name, column.name)
    [[(stored,)], [(tags,)]] = _run_sql(url, "SELECT hptuning FROM experiment_groups",
                                        "SELECT tags FROM projects")
    # JSONB had sorted the keys before the upgrade; the value is kept as it was.
    assert stored == hptuning and tags == ["b", "a"]
    command.downgrade(alembic_config(url), "0004_active_run_index")
    assert set(_column_types(url).values()) == {"jsonb"}
    asyncio.run(_drop_database(admin, name))


async def _drop_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()
