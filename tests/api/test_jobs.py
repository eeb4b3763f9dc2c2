"""Job routes over ASGI: CRUD, stop, restart, statuses, logs, bookmarks, unique names."""

from __future__ import annotations

JOB = "version: 1\nkind: job\nbuild:\n  image: busybox\nrun:\n  cmd: echo hello\n"
LIST_FIELDS = {
    "id", "uuid", "name", "unique_name", "user", "description", "created_at", "updated_at",
    "last_status", "started_at", "finished_at", "tags", "project", "build_job", "bookmarked",
}  # fmt: skip
DETAIL_FIELDS = LIST_FIELDS | {
    "readme", "config", "resources", "node_scheduled", "is_clone", "data_refs", "original",
}  # fmt: skip


async def _project(client, user, name="p"):
    r = await client.post("/api/v1/projects", json={"name": name}, headers=user.headers)
    assert r.status_code == 201, r.text


async def _job(client, user, project="p", **body):
    r = await client.post(
        f"/api/v1/{user.username}/{project}/jobs",
        json={"config": JOB, **body},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_list_get_patch_delete(client, owner):
    await _project(client, owner)
    job = await _job(client, owner, name="j1", tags=["a"])
    assert set(job) == DETAIL_FIELDS
    assert job["unique_name"] == f"alice.p.jobs.{job['id']}" and len(job["uuid"]) == 32
    assert job["user"] == "alice" and job["project"] == "alice.p"
    assert job["build_job"].startswith("alice.p.builds.")
    assert job["last_status"] == "created" and job["is_clone"] is False
    assert job["config"]["run"]["cmd"] == "echo hello"
    base = f"/api/v1/alice/p/jobs/{job['id']}"
    r = await client.get("/api/v1/alice/p/jobs", headers=owner.headers)
    assert r.json()["count"] == 1 and set(r.json()["results"][0]) == LIST_FIELDS
    r = await client.post(
        "/api/v1/alice/p/jobs", json={"config": JOB, "name": "j1"}, headers=owner.headers
    )
    assert r.status_code == 400 and "already exists" in r.json()["detail"]
    r = await client.patch(
        base, json={"tags": ["b"], "merge": True, "description": "d"}, headers=owner.headers
    )
    assert r.status_code == 200 and r.json()["tags"] == ["a", "b"]
    assert r.json()["description"] == "d"
    r = await client.put(base, json={"tags": ["c"]}, headers=owner.headers)
    assert r.json()["tags"] == ["c"]
    r = await client.get("/api/v1/alice/p", headers=owner.headers)
    assert r.json()["num_jobs"] == 1
    r = await client.delete(base, headers=owner.headers)
    assert r.status_code == 204
    assert (await client.get(base, headers=owner.headers)).status_code == 404
    r = await client.get("/api/v1/alice/p", headers=owner.headers)
    assert r.json()["num_jobs"] == 0


async def test_bad_config_writes_nothing(client, owner):
    await _project(client, owner)
    experiment = "version: 1\nkind: experiment\nrun:\n  cmd: echo\n"
    for config in (experiment, "::: [", JOB.replace("run:", "runs:")):
        r = await client.post(
            "/api/v1/alice/p/jobs", json={"config": config}, headers=owner.headers
        )
        assert r.status_code == 400, r.text
        assert r.json()["detail"]
    r = await client.get("/api/v1/alice/p/jobs", headers=owner.headers)
    assert r.json()["count"] == 0


async def test_stop_restart_statuses(client, owner):
    await _project(client, owner)
    job = await _job(client, owner, description="first")
    base = f"/api/v1/alice/p/jobs/{job['id']}"
    r = await client.post(base + "/stop", headers=owner.headers)
    assert r.status_code == 200
    r = await client.get(base, headers=owner.headers)
    assert r.json()["last_status"] == "stopped"
    r = await client.get(base + "/statuses", headers=owner.headers)
    rows = r.json()["results"]
    assert [s["status"] for s in rows] == ["created", "stopped"]
    assert set(rows[0]) == {
        "id", "uuid", "job", "created_at", "message", "traceback", "status", "details",
    }  # fmt: skip
    assert rows[0]["job"] == job["id"]
    r = await client.post(base + "/restart", headers=owner.headers)
    assert r.status_code == 201
    clone = r.json()
    assert clone["id"] != job["id"] and clone["is_clone"] is True
    assert clone["original"] == job["unique_name"] and clone["description"] == "first"
    assert clone["last_status"] == "created"
    r = await client.post(
        f"/api/v1/alice/p/jobs/{clone['id']}/statuses",
        json={"status": "running", "message": "by hand"},
        headers=owner.headers,
    )
    assert r.status_code == 201 and r.json()["status"] == "running"
    assert r.json()["job"] == clone["id"]
    r = await client.post(
        f"/api/v1/alice/p/jobs/{clone['id']}/statuses",
        json={"status": "no-such"},
        headers=owner.headers,
    )
    assert r.status_code == 400 and "no-such" in r.json()["detail"]
    r = await client.get(f"/api/v1/alice/p/jobs/{clone['id']}/statuses", headers=owner.headers)
    assert [s["status"] for s in r.json()["results"]] == ["created", "running"]


async def test_logs_and_heartbeat(client, owner):
    await _project(client, owner)
    job = await _job(client, owner)
    base = f"/api/v1/alice/p/jobs/{job['id']}"
    assert (await client.get(base + "/logs", headers=owner.headers)).status_code == 404
    r = await client.post(base + "/logs", json="one", headers=owner.headers)
    assert r.status_code == 200
    r = await client.post(base + "/logs", json=["two", "three"], headers=owner.headers)
    r = await client.get(base + "/logs", headers=owner.headers)
    assert r.status_code == 200 and r.text == "one\ntwo\nthree\n"
    r = await client.post(base + "/logs", json={"not": "lines"}, headers=owner.headers)
    assert r.status_code == 400
    assert (await client.get(base + "/logs", headers=owner.headers)).text == "one\ntwo\nthree\n"
    r = await client.post(base + "/_heartbeat", headers=owner.headers)
    assert r.status_code == 200


async def test_bookmarks_and_delete_removes_them(client, owner):
    await _project(client, owner)
    job = await _job(client, owner)
    base = f"/api/v1/alice/p/jobs/{job['id']}"
    assert (await client.post(base + "/bookmark", headers=owner.headers)).status_code == 201
    r = await client.get(base, headers=owner.headers)
    assert r.json()["bookmarked"] is True
    r = await client.get("/api/v1/bookmarks/alice/jobs", headers=owner.headers)
    assert r.json()["count"] == 1
    assert (await client.delete(base + "/unbookmark", headers=owner.headers)).status_code == 204
    r = await client.get("/api/v1/alice/p/jobs", headers=owner.headers)
    assert r.json()["results"][0]["bookmarked"] is False
    await client.post(base + "/bookmark", headers=owner.headers)
    assert (await client.delete(base, headers=owner.headers)).status_code == 204
    r = await client.get("/api/v1/bookmarks/alice/jobs", headers=owner.headers)
    assert r.json()["count"] == 0


async def test_ids_of_another_project_are_404(client, owner):
    await _project(client, owner)
    await _project(client, owner, "q")
    job = await _job(client, owner)
    other = f"/api/v1/alice/q/jobs/{job['id']}"
    for method, suffix in (
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/stop"),
        ("POST", "/restart"),
        ("GET", "/statuses"),
        ("GET", "/logs"),
        ("POST", "/bookmark"),
    ):
        body = {} if method == "PATCH" else None
        r = await client.request(method, other + suffix, json=body, headers=owner.headers)
        assert r.status_code == 404, (method, suffix, r.text)
    r = await client.get(f"/api/v1/alice/p/jobs/{job['id']}", headers=owner.headers)
    assert r.json()["last_status"] == "created"


async def test_openapi_documents_run_shapes(client):
    spec = (await client.get("/openapi.json")).json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]

    def ref(path: str, method: str, code: str) -> str:
        body = paths[f"/api/v1/{{username}}/{{project}}{path}"][method]["responses"][code]
        return body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]

    assert ref("/jobs/{run_id}", "get", "200") == "JobDetailOut"
    assert ref("/builds", "get", "200") == "Page_BuildOut_"
    assert ref("/experiments/{exp_id}", "get", "200") == "ExperimentDetailOut"
    assert ref("/experiments/{exp_id}/statuses", "get", "200") == "Page_ExperimentStatusOut_"
    assert ref("/experiments/{exp_id}/metrics", "get", "200") == "Page_MetricOut_"
    assert set(schemas["JobDetailOut"]["properties"]) == DETAIL_FIELDS
    assert {"job", "details", "status"} <= set(schemas["JobStatusOut"]["properties"])
