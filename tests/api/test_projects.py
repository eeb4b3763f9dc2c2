from __future__ import annotations

import re

import pytest


async def test_create_get_list_update_delete(client, owner):
    r = await client.post("/api/v1/projects", json={"name": "foo", "description": "d"},
                          headers=owner.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "foo" and body["user"] == "alice" and body["unique_name"] == "alice.foo"
    assert re.fullmatch(r"[0-9a-f]{32}", body["uuid"])
    assert body["is_public"] is True
    assert body["created_at"].endswith("+00:00")

    r = await client.get("/api/v1/alice/foo/", headers=owner.headers)
    assert r.status_code == 200
    detail = r.json()
    for key in ("has_code", "has_tensorboard", "has_notebook", "bookmarked"):
        assert detail[key] is False
    for key in ("num_experiment_groups", "num_independent_experiments", "num_experiments",
                "num_jobs", "num_builds"):
        assert detail[key] == 0

    r = await client.get("/api/v1/alice", headers=owner.headers)
    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 1 and page["next"] is None and page["previous"] is None
    assert page["results"][0]["name"] == "foo" and page["results"][0]["bookmarked"] is False

    r = await client.patch("/api/v1/alice/foo", json={"description": "new", "tags": ["a"]},
                           headers=owner.headers)
    assert r.status_code == 200 and r.json()["description"] == "new"
    r = await client.patch("/api/v1/alice/foo", json={"tags": ["b"], "merge": True},
                           headers=owner.headers)
    assert r.json()["tags"] == ["a", "b"]
    r = await client.put("/api/v1/alice/foo/", json={"is_public": False}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["is_public"] is False

    r = await client.delete("/api/v1/alice/foo", headers=owner.headers)
    assert r.status_code == 204
    r = await client.get("/api/v1/alice/foo", headers=owner.headers)
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}


async def test_duplicate_name(client, owner):
    await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    r = await client.post("/api/v1/projects/", json={"name": "foo"}, headers=owner.headers)
    assert r.status_code == 400
    assert r.json()["detail"] == "A project with name `foo` already exists."


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": "not a slug"}, "name"),
        ({"name": "experiments"}, "name"),
        ({"name": "ok", "is_public": "maybe"}, "is_public"),
        ({"name": "ok", "tags": "notalist"}, "tags"),
        ({"name": 5}, "name"),
        ({"name": "nul\x00"}, "name"),
    ],
)
async def test_bad_bodies(client, owner, body, field):
    r = await client.post("/api/v1/projects", json=body, headers=owner.headers)
    assert r.status_code == 400, r.text
    assert field in r.json()["detail"]
    r = await client.get("/api/v1/alice", headers=owner.headers)
    assert r.json()["count"] == 0


async def test_malformed_json(client, owner):
    r = await client.post("/api/v1/projects", content=b"{not json",
                          headers={**owner.headers, "Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["detail"]


async def test_read_only_fields_ignored(client, owner):
    r = await client.post("/api/v1/projects", headers=owner.headers, json={
        "name": "bar", "id": 99, "uuid": None, "user": "mallory", "has_code": True,
        "num_jobs": 7, "created_at": None})
    assert r.status_code == 201
    assert r.json()["user"] == "alice" and r.json()["num_jobs"] == 0


async def test_pagination_and_query(client, owner):
    for i in range(5):
        r = await client.post("/api/v1/projects", json={"name": f"p{i}", "tags": [f"t{i % 2}"]},
                              headers=owner.headers)
        assert r.status_code == 201
    r = await client.get("/api/v1/alice?limit=2&offset=2", headers=owner.headers)
    page = r.json()
    assert page["count"] == 5 and len(page["results"]) == 2
    assert page["next"].startswith("http://testserver/api/v1/alice?") and "offset=4" in page["next"]
    assert "offset=0" in page["previous"]
    assert [p["name"] for p in page["results"]] == ["p2", "p1"]  # -updated_at
    r = await client.get("/api/v1/alice?sort=created_at&limit=1", headers=owner.headers)
    assert r.json()["results"][0]["name"] == "p0"
    r = await client.get("/api/v1/alice?query=tags:t1", headers=owner.headers)
    assert sorted(p["name"] for p in r.json()["results"]) == ["p1", "p3"]
    r = await client.get("/api/v1/alice?query=name:p0|p4", headers=owner.headers)
    assert r.json()["count"] == 2
    r = await client.get("/api/v1/alice?query=name:~p0", headers=owner.headers)
    assert r.json()["count"] == 4
    r = await client.get("/api/v1/alice?query=created_at:>2000-01-01", headers=owner.headers)
    assert r.json()["count"] == 5


@pytest.mark.parametrize("qs, word", [
    ("query=bogus:1", "bogus"), ("query=name", "field:operation"), ("limit=-1", "limit"),
    ("offset=abc", "offset"), ("limit=100000", "limit"), ("query=created_at:yesterday", "date"),
    ("query=name:a,,", "empty"),
])
async def test_bad_list_params(client, owner, qs, word):
    r = await client.get(f"/api/v1/alice?{qs}", headers=owner.headers)
    assert r.status_code == 400 and word in r.json()["detail"], r.text


async def test_bookmarks(client, owner):
    await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    r = await client.post("/api/v1/alice/foo/bookmark", headers=owner.headers)
    assert r.status_code == 201
    r = await client.post("/api/v1/alice/foo/bookmark/", headers=owner.headers)
    assert r.status_code == 201
    assert (await client.get("/api/v1/alice/foo", headers=owner.headers)).json()["bookmarked"]
    listed = (await client.get("/api/v1/alice", headers=owner.headers)).json()["results"]
    assert listed[0]["bookmarked"] is True
    r = await client.delete("/api/v1/alice/foo/unbookmark", headers=owner.headers)
    assert r.status_code == 204
    assert not (await client.get("/api/v1/alice/foo", headers=owner.headers)).json()["bookmarked"]


async def test_unknown_user_404(client, owner):
    r = await client.get("/api/v1/nobody", headers=owner.headers)
    assert r.status_code == 404
