"""Concurrent creates and renames to one name (issue 15, item 6): every named resource answers
201/200 once and 400 "A <kind> with name `x` already exists." to the others, never a 500, and
exactly one row carries the name. On Postgres the requests really overlap (a connection each);
on SQLite they queue on the write lock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import session_scope
from app.models import BuildJob, Experiment, ExperimentGroup, Job, Project, User

P = "/api/v1/alice/p"
CONCURRENT = 8
ROUNDS = 3

EXPERIMENT = "version: 1\nkind: experiment\nrun:\n  cmd: echo hi\n"
GROUP = "version: 1\nkind: group\nhptuning:\n  matrix: {x: {values: [1]}}\nrun: {cmd: echo}\n"
JOB = "version: 1\nkind: job\nbuild:\n  image: busybox\nrun:\n  cmd: echo hi\n"
BUILD = "version: 1\nkind: build\nbuild:\n  image: busybox\n"


@dataclass(frozen=True)
class Named:
    kind: str  # as in the 400 message
    path: str  # the list/create route
    model: Any
    body: dict[str, Any]  # the create body without the name
    field: str = "name"


RESOURCES = {
    "project": Named("project", "/api/v1/projects", Project, {}),
    "experiment": Named("experiment", f"{P}/experiments", Experiment, {"config": EXPERIMENT}),
    "group": Named("group", f"{P}/groups", ExperimentGroup, {"content": GROUP}),
    "job": Named("job", f"{P}/jobs", Job, {"config": JOB}),
    "build": Named("build", f"{P}/builds", BuildJob, {"config": BUILD}),
    "user": Named("user", "/api/v1/users", User, {"password": "password123"}, field="username"),
}


@pytest.fixture
async def project(client, owner):
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    assert r.status_code == 201, r.text


async def rows_named(app, model: Any, field: str, name: str) -> int:
    async with session_scope(app.state.sessionmaker) as session:
        column = getattr(model, field)
        return int(await session.scalar(select(func.count()).where(column == name)))


def assert_one_winner(answers: list[Any], ok: int, spec: Named, name: str) -> None:
    codes = sorted(r.status_code for r in answers)
    assert codes == [ok] + [400] * (len(answers) - 1), [r.text for r in answers]
    article = "An" if spec.kind == "experiment" else "A"
    message = f"{article} {spec.kind} with {spec.field} `{name}` already exists."
    assert {r.json()["detail"] for r in answers if r.status_code == 400} == {message}


@pytest.mark.parametrize("resource", list(RESOURCES))
async def test_concurrent_creates_with_one_name(app, client, owner, admin, project, resource):
    spec = RESOURCES[resource]
    headers = admin.headers if resource == "user" else owner.headers
    for round_ in range(ROUNDS):
        name = f"dup-{round_}"
        body = {**spec.body, spec.field: name}
        answers = await asyncio.gather(
            *(client.post(spec.path, json=body, headers=headers) for _ in range(CONCURRENT))
        )
        assert_one_winner(answers, 201, spec, name)
        assert await rows_named(app, spec.model, spec.field, name) == 1
    # the transaction of a refused create was rolled back whole: nothing else was left behind
    if resource != "user":
        r = await client.get(spec.path if resource != "project" else "/api/v1/alice",
                             headers=owner.headers)
        names = [row["name"] for row in r.json()["results"]]
        assert sorted(n for n in names if n.startswith("dup-")) == [
            f"dup-{i}" for i in range(ROUNDS)
        ]


@pytest.mark.parametrize("resource", [r for r in RESOURCES if r != "user"])
async def test_concurrent_renames_to_one_name(app, client, owner, project, resource):
    spec = RESOURCES[resource]
    for round_ in range(ROUNDS):
        ids = []
        for i in range(CONCURRENT):
            r = await client.post(spec.path, json={**spec.body, "name": f"r{round_}-{i}"},
                                  headers=owner.headers)
            assert r.status_code == 201, r.text
            ids.append(r.json()["name"] if resource == "project" else r.json()["id"])
        name = f"renamed-{round_}"
        base = "/api/v1/alice" if resource == "project" else spec.path
        answers = await asyncio.gather(
            *(client.patch(f"{base}/{i}", json={"name": name}, headers=owner.headers)
              for i in ids)
        )
        assert_one_winner(answers, 200, spec, name)
        assert await rows_named(app, spec.model, "name", name) == 1


async def test_a_clash_on_another_constraint_is_not_a_taken_name(app, owner):
    """Only the name's own constraint becomes that 400; anything else stays an error."""
    from sqlalchemy.exc import IntegrityError

    from app.services.unique_names import unique_name

    with pytest.raises(IntegrityError):
        async with session_scope(app.state.sessionmaker) as session:
            session.add(Project(user_id=owner.id, name="one", uuid="same"))
            session.add(Project(user_id=owner.id, name="two", uuid="same"))
            async with unique_name(session, "project", "two"):
                await session.flush()
