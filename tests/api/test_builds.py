"""Build routes over ASGI: CRUD, de-duplication, stop, statuses, logs, bookmarks."""

from __future__ import annotations

BUILD = "version: 1\nkind: build\nbuild:\n  image: busybox\n"
JOB_WITH_BUILD = "version: 1\nkind: job\nbuild:\n  image: busybox\nrun:\n  cmd: echo hi\n"
EXP_WITH_BUILD = "version: 1\nkind: experiment\nbuild:\n  image: busybox\nrun:\n  cmd: echo hi\n"
LIST_FIELDS = {
    "id", "uuid", "name", "unique_name", "user", "description", "created_at", "updated_at",
    "started_at", "finished_at", "last_status", "tags", "project", "bookmarked",
}  # fmt: skip
DETAIL_FIELDS = LIST_FIELDS | {
    "readme", "config", "resources", "node_scheduled", "num_jobs", "num_experiments",
    "dockerfile", "commit",
}  # fmt: skip


async def _project(client, user, name="p"):
    r = await client.post("/api/v1/projects", json={"name": name}, headers=user.headers)
    assert r.status_code == 201, r.text


async def test_create_list_get_patch_delete(client, owner):
    await _project(client, owner)
    r = await client.post(
        "/api/v1/alice/p/builds", json={"config": BUILD, "name": "b1"}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    build = r.json()
    assert set(build) == DETAIL_FIELDS
    assert build["unique_name"] == f"alice.p.builds.{build['id']}"
    assert build["num_jobs"] == 0 and build["num_experiments"] == 0
    base = f"/api/v1/alice/p/builds/{build['id']}"
    r = await client.get("/api/v1/alice/p/builds", headers=owner.headers)
    assert r.json()["count"] == 1 and set(r.json()["results"][0]) == LIST_FIELDS
    r = await client.patch(base, json={"description": "x"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["description"] == "x"
    r = await client.get("/api/v1/alice/p", headers=owner.headers)
    assert r.json()["num_builds"] == 1
    assert (await client.post(base + "/restart", headers=owner.headers)).status_code in (404, 405)
    assert (await client.delete(base, headers=owner.headers)).status_code == 204
    assert (await client.get(base, headers=owner.headers)).status_code == 404


async def test_wrong_kind_is_400(client, owner):
    await _project(client, owner)
    r = await client.post(
        "/api/v1/alice/p/builds", json={"config": JOB_WITH_BUILD}, headers=owner.headers
    )
    assert r.status_code == 400
    r = await client.get("/api/v1/alice/p/builds", headers=owner.headers)
    assert r.json()["count"] == 0


async def test_runs_share_a_build_of_the_same_config(client, owner):
    await _project(client, owner)
    await _project(client, owner, "q")
    refs = []
    for path, config in (
        ("jobs", JOB_WITH_BUILD),
        ("jobs", JOB_WITH_BUILD),
        ("experiments", EXP_WITH_BUILD),
    ):
        r = await client.post(
            f"/api/v1/alice/p/{path}", json={"config": config}, headers=owner.headers
        )
        assert r.status_code == 201, r.text
        refs.append(r.json()["build_job"])
    assert refs[0] and refs[0] == refs[1] == refs[2]
    other_image = JOB_WITH_BUILD.replace("busybox", "alpine")
    r = await client.post(
        "/api/v1/alice/p/jobs", json={"config": other_image}, headers=owner.headers
    )
    assert r.json()["build_job"] not in (None, refs[0])
    # another project never shares a build
    r = await client.post(
        "/api/v1/alice/q/jobs", json={"config": JOB_WITH_BUILD}, headers=owner.headers
    )
    assert r.json()["build_job"].startswith("alice.q.builds.")
    r = await client.get("/api/v1/alice/p/builds", headers=owner.headers)
    assert r.json()["count"] == 2
    build_id = refs[0].rsplit(".", 1)[1]
    r = await client.get(f"/api/v1/alice/p/builds/{build_id}", headers=owner.headers)
    assert r.json()["num_jobs"] == 2 and r.json()["num_experiments"] == 1
    assert (
        await client.get(f"/api/v1/alice/q/builds/{build_id}", headers=owner.headers)
    ).status_code == 404


async def test_stop_statuses_logs_bookmarks(client, owner):
    await _project(client, owner)
    r = await client.post("/api/v1/alice/p/builds", json={"config": BUILD}, headers=owner.headers)
    base = f"/api/v1/alice/p/builds/{r.json()['id']}"
    assert (await client.post(base + "/stop", headers=owner.headers)).status_code == 200
    r = await client.get(base + "/statuses", headers=owner.headers)
    assert [s["status"] for s in r.json()["results"]] == ["created", "stopped"]
    r = await client.post(base + "/statuses", json={"status": "running"}, headers=owner.headers)
    assert r.status_code == 400  # a done build stays done
    r = await client.post(base + "/logs", json=["built"], headers=owner.headers)
    assert r.status_code == 200
    assert (await client.get(base + "/logs", headers=owner.headers)).text == "built\n"
    assert (await client.post(base + "/bookmark", headers=owner.headers)).status_code == 201
    r = await client.get("/api/v1/alice/p/builds", headers=owner.headers)
    assert r.json()["results"][0]["bookmarked"] is True
    assert (await client.delete(base + "/unbookmark", headers=owner.headers)).status_code == 204
    assert (await client.get(base, headers=owner.headers)).json()["bookmarked"] is False
