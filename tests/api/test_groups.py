"""Experiment group API (seed 001): shapes, validation, plan, stop, bookmarks, permissions."""

from __future__ import annotations

import re

import pytest

SEED_CONTENT = """
version: 1
kind: group
hptuning:
  concurrency: 5
  random_search:
    n_experiments: 10
  matrix:
    learning_rate:
      linspace: 0.001:0.1:5
    dropout:
      values: [0.25, 0.3]
    activation:
      values: [relu, sigmoid]
declarations:
  batch_size: 128
  num_steps: 500
  num_epochs: 1
build:
  image: tensorflow/tensorflow:1.4.1-py3
  build_steps: [pip3 install --no-cache-dir -U polyaxon-client]
run:
  cmd: python3 model.py --batch_size={{ batch_size }} --learning_rate={{ learning_rate }}
"""

SEED_HPTUNING = {
    "early_stopping": None,
    "concurrency": 5,
    "seed": None,
    "matrix": {
        "dropout": {"values": [0.25, 0.3]},
        "activation": {"values": ["relu", "sigmoid"]},
        "learning_rate": {"linspace": {"num": 5, "stop": 0.1, "start": 0.001}},
    },
    "random_search": {"n_experiments": 10},
}

DETAIL_FIELDS = {
    "id", "uuid", "name", "unique_name", "user", "description", "last_status", "project",
    "created_at", "updated_at", "started_at", "finished_at", "tags", "concurrency",
    "search_algorithm", "current_iteration", "content", "hptuning", "has_tensorboard",
    "num_experiments", "num_pending_experiments", "num_running_experiments",
    "num_scheduled_experiments", "num_succeeded_experiments", "num_failed_experiments",
    "num_stopped_experiments", "bookmarked",
}

GROUPS = "/api/v1/alice/quick-start/groups"


@pytest.fixture
async def project(client, owner):
    r = await client.post("/api/v1/projects", json={"name": "quick-start"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_and_get_match_seed(client, owner, project):
    r = await client.post(GROUPS, json={"content": SEED_CONTENT}, headers=owner.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert DETAIL_FIELDS <= set(body)
    assert re.fullmatch(r"[0-9a-f]{32}", body["uuid"])
    assert body["unique_name"] == f"alice.quick-start.{body['id']}"
    assert body["user"] == "alice" and body["project"] == "alice.quick-start"
    assert body["last_status"] == "created"
    assert body["search_algorithm"] == "random" and body["concurrency"] == 5
    assert body["current_iteration"] == 0
    assert body["content"] == SEED_CONTENT
    assert body["hptuning"] == SEED_HPTUNING
    assert body["num_experiments"] == 0 and body["bookmarked"] is False
    assert body["has_tensorboard"] is None

    r = await client.get(f"{GROUPS}/{body['id']}/", headers=owner.headers)
    assert r.status_code == 200 and r.json()["hptuning"] == SEED_HPTUNING

    r = await client.get(GROUPS, headers=owner.headers)
    page = r.json()
    assert page["count"] == 1 and page["results"][0]["id"] == body["id"]
    assert page["results"][0]["group_type"] == "study"

    r = await client.get(f"{GROUPS}/{body['id']}/statuses", headers=owner.headers)
    rows = r.json()["results"]
    assert [s["status"] for s in rows] == ["created"]
    assert rows[0]["experiment_group"] == body["id"]

    r = await client.get("/api/v1/alice/quick-start", headers=owner.headers)
    assert r.json()["num_experiment_groups"] == 1


async def test_content_as_object_and_no_algorithm_is_grid(client, owner, project):
    content = {
        "version": 1,
        "kind": "group",
        "hptuning": {"matrix": {"lr": {"values": [1, 2, 3]}}},
        "run": {"cmd": "echo {{ lr }}"},
    }
    r = await client.post(GROUPS, json={"content": content, "name": "g1"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["search_algorithm"] == "grid" and body["concurrency"] == 1
    assert body["hptuning"]["grid_search"] == {}
    assert body["name"] == "g1"


@pytest.mark.parametrize(
    "content, path",
    [
        ("version: 1\nkind: group\nrun: {cmd: ls}\n", "hptuning"),
        ("version: 1\nkind: experiment\nrun: {cmd: ls}\n", "kind"),
        ("version: 1\nkind: group\nhptuning: {matrix: {lr: {uniform: 0:1}}}\n", "matrix.lr"),
        ("version: 1\nkind: group\nhptuning: {concurrency: 0, matrix: {a: {values: [1]}}}\n",
         "concurrency"),
        ("version: 1\nkind: group\nhptuning: {matrix: {a: {linspace: 3:1:2}}}\n", "matrix.a"),
        ("version: 1\nkind: group\n  bad: [yaml\n", "YAML"),
    ],
)
async def test_invalid_polyaxonfile_is_400_and_creates_nothing(client, owner, project, content,
                                                               path):
    r = await client.post(GROUPS, json={"content": content}, headers=owner.headers)
    assert r.status_code == 400, r.text
    assert path in r.text
    r = await client.get(GROUPS, headers=owner.headers)
    assert r.json()["count"] == 0


async def test_bad_bodies(client, owner, project):
    for body in ({}, {"content": 5}, {"content": SEED_CONTENT, "name": "not a slug"},
                 {"content": SEED_CONTENT, "tags": "x"}):
        r = await client.post(GROUPS, json=body, headers=owner.headers)
        assert r.status_code == 400, (body, r.text)


async def test_plan_creates_nothing(client, owner, project):
    r = await client.post(f"{GROUPS}/plan", json={"content": SEED_CONTENT}, headers=owner.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "search_algorithm": "random",
        "space_size": 20,
        "num_experiments": 10,
        "iterations": [10],
        "concurrency": 5,
        "warnings": [],
    }
    hb = """
version: 1
kind: group
hptuning:
  hyperband:
    max_iter: 9
    eta: 3
    resource: {name: epochs, type: int}
    metric: {name: loss, optimization: minimize}
  matrix: {lr: {uniform: 0:1}}
run: {cmd: "train --epochs={{ epochs }}"}
"""
    r = await client.post(f"{GROUPS}/plan", json={"content": hb}, headers=owner.headers)
    assert r.status_code == 200, r.text
    assert r.json()["search_algorithm"] == "hyperband"
    assert r.json()["iterations"] == [9, 3, 1, 5, 1, 3]
    r = await client.get(GROUPS, headers=owner.headers)
    assert r.json()["count"] == 0


class TestMaxGroupExperiments:
    @pytest.fixture
    def settings_overrides(self):
        return {"max_group_experiments": 15}

    async def test_refused_before_writing(self, client, owner, project):
        content = SEED_CONTENT.replace("n_experiments: 10", "n_experiments: 16")
        content = content.replace("linspace: 0.001:0.1:5", "linspace: 0.001:0.1:50")
        r = await client.post(GROUPS, json={"content": content}, headers=owner.headers)
        assert r.status_code == 400 and "PLX_MAX_GROUP_EXPERIMENTS" in r.text
        r = await client.post(f"{GROUPS}/plan", json={"content": content}, headers=owner.headers)
        assert r.status_code == 400
        r = await client.get(GROUPS, headers=owner.headers)
        assert r.json()["count"] == 0


async def test_patch_concurrency_name_tags_and_content(client, owner, project):
    gid = (await client.post(GROUPS, json={"content": SEED_CONTENT},
                             headers=owner.headers)).json()["id"]
    r = await client.patch(f"{GROUPS}/{gid}", json={"concurrency": 2, "description": "d",
                                                     "tags": ["a"]}, headers=owner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["concurrency"] == 2 and body["hptuning"]["concurrency"] == 2
    assert body["description"] == "d" and body["tags"] == ["a"]
    r = await client.patch(f"{GROUPS}/{gid}", json={"concurrency": 0}, headers=owner.headers)
    assert r.status_code == 400 and "concurrency" in r.text
    r = await client.patch(f"{GROUPS}/{gid}", json={"concurrency": None}, headers=owner.headers)
    assert r.status_code == 400
    # Before it started, the content may be replaced (validated); once running, not.
    new = SEED_CONTENT.replace("n_experiments: 10", "n_experiments: 4")
    r = await client.patch(f"{GROUPS}/{gid}", json={"content": new}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["hptuning"]["random_search"]["n_experiments"] == 4
    await client.post(f"{GROUPS}/{gid}/stop", headers=owner.headers)
    r = await client.patch(f"{GROUPS}/{gid}", json={"content": SEED_CONTENT},
                           headers=owner.headers)
    assert r.status_code == 400 and "content" in r.json()["detail"]


async def test_stop_delete_bookmark(client, owner, project):
    gid = (await client.post(GROUPS, json={"content": SEED_CONTENT},
                             headers=owner.headers)).json()["id"]
    r = await client.post(f"{GROUPS}/{gid}/bookmark", headers=owner.headers)
    assert r.status_code == 201
    r = await client.get(f"{GROUPS}/{gid}", headers=owner.headers)
    assert r.json()["bookmarked"] is True
    r = await client.delete(f"{GROUPS}/{gid}/unbookmark", headers=owner.headers)
    assert r.status_code == 204
    r = await client.get(f"{GROUPS}/{gid}", headers=owner.headers)
    assert r.json()["bookmarked"] is False

    r = await client.post(f"{GROUPS}/{gid}/stop", json={"pending": True}, headers=owner.headers)
    assert r.status_code == 200
    body = (await client.get(f"{GROUPS}/{gid}", headers=owner.headers)).json()
    assert body["last_status"] == "stopped" and body["finished_at"] is not None
    # Stopping a finished group is a no-op.
    r = await client.post(f"{GROUPS}/{gid}/stop", headers=owner.headers)
    assert r.status_code == 200
    r = await client.get(f"{GROUPS}/{gid}/statuses", headers=owner.headers)
    assert [s["status"] for s in r.json()["results"]] == ["created", "stopped"]

    r = await client.delete(f"{GROUPS}/{gid}", headers=owner.headers)
    assert r.status_code == 204
    r = await client.get(f"{GROUPS}/{gid}", headers=owner.headers)
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}


async def test_permissions_and_other_projects(client, owner, other, project):
    gid = (await client.post(GROUPS, json={"content": SEED_CONTENT},
                             headers=owner.headers)).json()["id"]
    # bob can read alice's public project, not write to it.
    assert (await client.get(f"{GROUPS}/{gid}", headers=other.headers)).status_code == 200
    r = await client.post(GROUPS, json={"content": SEED_CONTENT}, headers=other.headers)
    assert r.status_code == 403
    r = await client.post(f"{GROUPS}/{gid}/stop", headers=other.headers)
    assert r.status_code == 403
    # A group id seen through another project is 404.
    await client.post("/api/v1/projects", json={"name": "second"}, headers=owner.headers)
    r = await client.get(f"/api/v1/alice/second/groups/{gid}", headers=owner.headers)
    assert r.status_code == 404
    await client.patch("/api/v1/alice/quick-start", json={"is_public": False},
                       headers=owner.headers)
    assert (await client.get(f"{GROUPS}/{gid}", headers=other.headers)).status_code == 404
    assert (await client.get(GROUPS)).status_code == 401


async def test_list_query_and_sort(client, owner, project):
    for name in ("a1", "a2"):
        await client.post(GROUPS, json={"content": SEED_CONTENT, "name": name},
                          headers=owner.headers)
    r = await client.get(GROUPS, params={"query": "name:a1"}, headers=owner.headers)
    assert [g["name"] for g in r.json()["results"]] == ["a1"]
    r = await client.get(GROUPS, params={"sort": "created_at"}, headers=owner.headers)
    assert [g["name"] for g in r.json()["results"]] == ["a1", "a2"]
    r = await client.get(GROUPS, params={"query": "concurrency:>=5, status:created"},
                         headers=owner.headers)
    assert r.json()["count"] == 2
    r = await client.get(GROUPS, params={"query": "bogus:1"}, headers=owner.headers)
    assert r.status_code == 400
    r = await client.post(GROUPS, json={"content": SEED_CONTENT, "name": "a1"},
                          headers=owner.headers)
    assert r.status_code == 400 and "a1" in r.json()["detail"]


CLI_CONTENT = (
    "{'version': 1, 'kind': 'group', 'hptuning': {'concurrency': 5, 'random_search': "
    "{'n_experiments': 10}, 'matrix': {'learning_rate': {'linspace': '0.001:0.1:5'}, "
    "'dropout': {'values': [0.25, 0.3]}, 'activation': {'values': ['relu', 'sigmoid']}}}, "
    "'declarations': {'batch_size': 128, 'num_steps': 500, 'num_epochs': 1}, "
    "'run': {'cmd': 'python3 model.py --batch_size={{ batch_size }}'}}"
)


async def test_cli_content_python_repr_is_read_and_kept_as_sent(client, owner, project):
    r = await client.post(GROUPS, json={"content": CLI_CONTENT}, headers=owner.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["content"] == CLI_CONTENT
    assert body["hptuning"] == SEED_HPTUNING


async def test_has_tensorboard_is_null_until_a_group_tensorboard_exists(client, owner, project):
    gid = (await client.post(GROUPS, json={"content": SEED_CONTENT},
                             headers=owner.headers)).json()["id"]
    assert (await client.get(f"{GROUPS}/{gid}", headers=owner.headers)).json()[
        "has_tensorboard"] is None
    r = await client.post(f"{GROUPS}/{gid}/tensorboard/start", headers=owner.headers)
    assert r.status_code == 201, r.text
    # created, not yet running: false (v0 `is_running`)
    assert (await client.get(f"{GROUPS}/{gid}", headers=owner.headers)).json()[
        "has_tensorboard"] is False
