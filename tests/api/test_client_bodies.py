"""Create and update bodies exactly as polyaxon-client 0.3.9 serialises them: every field of its
schema, `null` for what the caller did not give (polyaxon-cli-0.3.9.md 4.1-4.3, 6). `null` for an
optional field means "not given"."""

from __future__ import annotations

import pytest

from app.schemas.common import Schema
from app.schemas.experiments import ExperimentCreate, RunUpdate
from app.schemas.groups import GroupCreate, GroupStop
from app.schemas.jobs import JobCreate
from app.schemas.plugins import NotebookStop
from app.schemas.projects import ProjectCreate, ProjectUpdate

# ExperimentConfig().to_dict() of polyaxon_schemas 0.3.9 with nothing set.
EXPERIMENT_NULLS = {
    "id": None, "uuid": None, "unique_name": None, "user": None, "name": None, "project": None,
    "experiment_group": None, "build_job": None, "description": None, "last_status": None,
    "last_metric": None, "created_at": None, "updated_at": None, "started_at": None,
    "finished_at": None, "total_run": None, "is_clone": None, "has_tensorboard": False,
    "config": None, "num_jobs": 0, "declarations": None, "tags": None, "resources": None,
    "run_env": None, "in_cluster": None, "ttl": None, "jobs": None,
}  # fmt: skip
# JobConfig().to_dict() (jobs and builds).
JOB_NULLS = {
    "id": None, "uuid": None, "unique_name": None, "pod_id": None, "name": None, "user": None,
    "project": None, "build_job": None, "description": None, "tags": None, "last_status": None,
    "created_at": None, "updated_at": None, "started_at": None, "finished_at": None,
    "total_run": None, "is_clone": None, "config": None, "in_cluster": None, "ttl": None,
    "resources": None, "definition": None,
}  # fmt: skip
PROJECT_NULLS = {
    "id": None, "name": None, "user": None, "unique_name": None, "uuid": None,
    "description": None, "tags": None, "is_public": True, "has_code": False, "created_at": None,
    "updated_at": None, "num_experiments": 0, "num_independent_experiments": 0,
    "num_experiment_groups": 0, "num_jobs": 0, "num_builds": 0, "has_tensorboard": False,
    "has_notebook": False, "experiment_groups": None, "experiments": None,
}  # fmt: skip
GROUP_NULLS = {
    "id": None, "uuid": None, "name": None, "unique_name": None, "user": None, "project": None,
    "description": None, "content": None, "group_type": None, "search_algorithm": None,
    "tags": None, "created_at": None, "updated_at": None, "started_at": None,
    "finished_at": None, "concurrency": None, "num_experiments": None,
    "num_scheduled_experiments": None, "num_pending_experiments": None,
    "num_running_experiments": None, "num_succeeded_experiments": None,
    "num_failed_experiments": None, "num_stopped_experiments": None, "last_status": None,
    "has_tensorboard": False, "experiments": None,
}  # fmt: skip
JOB = "version: 1\nkind: job\nbuild: {image: 'python:3.11-slim'}\nrun: {cmd: echo hi}\n"
BUILD = "version: 1\nkind: build\nbuild: {image: 'python:3.11-slim'}\n"
GROUP = (
    "{'version': 1, 'kind': 'group', 'hptuning': {'matrix': {'lr': {'values': [0.1, 0.2]}}}, "
    "'run': {'cmd': 'echo {{ lr }}'}}"
)


def _schemas() -> list[type[Schema]]:
    found, todo = [], [Schema]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


@pytest.mark.parametrize("schema", _schemas(), ids=lambda cls: cls.__name__)
def test_every_body_schema_reads_null_as_not_given(schema: type[Schema]):
    """A null for each field alone validates exactly like the field being absent."""
    for name in schema.model_fields:
        baseline = _validate(schema, {})
        with_null = _validate(schema, {name: None})
        assert with_null == baseline, (schema.__name__, name, with_null, baseline)


def _validate(schema: type[Schema], data: dict) -> object:
    try:
        return schema.model_validate(data).model_dump()
    except Exception as exc:
        return ("error", sorted(str(e["loc"]) for e in getattr(exc, "errors", list)()))


def test_null_keeps_meaning_clear_only_where_the_field_may_be_null():
    assert RunUpdate.model_validate({"description": None}).model_fields_set == {"description"}
    assert RunUpdate.model_validate({"merge": None}).merge is False
    # Not given: the create applies PLX_DEFAULT_PROJECT_VISIBILITY (public by default, as v0).
    assert ProjectCreate.model_validate({"name": "p", "is_public": None}).is_public is None
    assert ProjectUpdate.model_validate({"merge": None, "tags": ["a"]}).merge is False
    assert GroupStop.model_validate({"pending": None}).pending is False
    assert NotebookStop.model_validate({"commit": None}).commit is True
    assert ExperimentCreate.model_validate({"config": None}).config == {
        "version": 1,
        "kind": "experiment",
    }
    assert GroupCreate.model_fields["content"].is_required()
    assert JobCreate.model_fields["config"].is_required()


async def test_client_create_bodies_are_accepted(client, owner):
    h = owner.headers
    r = await client.post("/api/v1/projects", json={**PROJECT_NULLS, "name": "p"}, headers=h)
    assert r.status_code == 201, r.text
    body = {**EXPERIMENT_NULLS, "name": "tracked", "tags": ["t1"], "description": "d"}
    r = await client.post("/api/v1/alice/p/experiments", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["config"] == {"version": 1, "kind": "experiment"}
    for kind, config in (("jobs", JOB), ("builds", BUILD)):
        r = await client.post(
            f"/api/v1/alice/p/{kind}", json={**JOB_NULLS, "config": config}, headers=h
        )
        assert r.status_code == 201, (kind, r.text)
    r = await client.post(
        "/api/v1/alice/p/groups", json={**GROUP_NULLS, "content": GROUP}, headers=h
    )
    assert r.status_code == 201, r.text


async def test_required_fields_sent_as_null_name_the_field(client, owner):
    h = owner.headers
    await client.post("/api/v1/projects", json={"name": "p"}, headers=h)
    for path, body, field in (
        ("/api/v1/projects", PROJECT_NULLS, "name"),
        ("/api/v1/alice/p/jobs", JOB_NULLS, "config"),
        ("/api/v1/alice/p/groups", GROUP_NULLS, "content"),
    ):
        r = await client.post(path, json=body, headers=h)
        assert r.status_code == 400, (path, r.text)
        assert field in r.json()["detail"], r.text


async def test_tracking_client_updates(client, owner):
    h = owner.headers
    await client.post("/api/v1/projects", json={"name": "p"}, headers=h)
    r = await client.post("/api/v1/alice/p/experiments", json=EXPERIMENT_NULLS, headers=h)
    base = f"/api/v1/alice/p/experiments/{r.json()['id']}"
    for patch in (
        {"declarations": {"lr": 0.1}, "merge": True},
        {"declarations": {"layers": 2}, "merge": True},
        {"data_refs": {"train": "0123456789ab"}, "merge": True},
        {"data_refs": {"test": "ba9876543210"}, "merge": True},
        {"tags": ["a"], "merge": None},
        {"run_env": {"pid": 1}},
    ):
        r = await client.patch(base, json=patch, headers=h)
        assert r.status_code == 200, (patch, r.text)
    exp = r.json()
    assert exp["declarations"] == {"lr": 0.1, "layers": 2}
    assert exp["data_refs"] == {"train": "0123456789ab", "test": "ba9876543210"}
    assert exp["tags"] == ["a"] and exp["run_env"] == {"pid": 1}
