"""Experiment routes over ASGI, and the run step driven with FakeRuntime."""

from __future__ import annotations

from app.reconciler.loop import Reconciler
from app.reconciler.runs import reconcile_runs
from app.runtimes.fake import FakeRuntime

CONFIG = "version: 1\nkind: experiment\nrun:\n  cmd: echo {{ lr }}\ndeclarations:\n  lr: 0.1\n"


async def _project(client, user, name="p", public=True):
    r = await client.post(
        "/api/v1/projects", json={"name": name, "is_public": public}, headers=user.headers
    )
    assert r.status_code == 201, r.text


async def test_create_get_list_update_delete(client, owner):
    await _project(client, owner)
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": CONFIG, "name": "e1"}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    exp = r.json()
    assert exp["unique_name"] == f"alice.p.{exp['id']}" and exp["last_status"] == "created"
    assert exp["declarations"] == {"lr": 0.1} and exp["user"] == "alice"
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": CONFIG, "name": "e1"}, headers=owner.headers
    )
    assert r.status_code == 400 and "already exists" in r.json()["detail"]
    r = await client.get("/api/v1/alice/p/experiments?query=status:created", headers=owner.headers)
    assert r.json()["count"] == 1
    r = await client.patch(
        f"/api/v1/alice/p/experiments/{exp['id']}",
        json={"tags": ["a"], "declarations": {"x": 1}, "merge": True},
        headers=owner.headers,
    )
    assert r.status_code == 200 and r.json()["declarations"] == {"lr": 0.1, "x": 1}
    r = await client.get("/api/v1/alice/p", headers=owner.headers)
    assert r.json()["num_experiments"] == 1
    r = await client.delete(f"/api/v1/alice/p/experiments/{exp['id']}", headers=owner.headers)
    assert r.status_code == 204
    r = await client.get(f"/api/v1/alice/p/experiments/{exp['id']}", headers=owner.headers)
    assert r.status_code == 404


async def test_bad_config_and_other_project(client, owner, other):
    await _project(client, owner)
    await _project(client, owner, "q")
    for body in ({"config": "kind: group\nversion: 1"}, {"config": "::: ["}, {"config": 1}):
        r = await client.post("/api/v1/alice/p/experiments", json=body, headers=owner.headers)
        assert r.status_code == 400, r.text
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": CONFIG}, headers=owner.headers
    )
    exp_id = r.json()["id"]
    r = await client.get(f"/api/v1/alice/q/experiments/{exp_id}", headers=owner.headers)
    assert r.status_code == 404
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": CONFIG}, headers=other.headers
    )
    assert r.status_code == 403
    r = await client.post(f"/api/v1/alice/p/experiments/{exp_id}/stop", headers=other.headers)
    assert r.status_code == 403


async def test_tracking_metrics_statuses_logs(client, owner, app):
    await _project(client, owner)
    r = await client.post(
        "/api/v1/alice/p/experiments",
        json={"config": {"version": 1, "kind": "experiment"}},
        headers=owner.headers,
    )
    exp_id = r.json()["id"]
    base = f"/api/v1/alice/p/experiments/{exp_id}"
    r = await client.post(base + "/statuses", json={"status": "running"}, headers=owner.headers)
    assert r.status_code == 201 and r.json()["status"] == "running"
    r = await client.post(base + "/statuses", json={"status": "bogus"}, headers=owner.headers)
    assert r.status_code == 400
    r = await client.post(base + "/metrics", json={"values": {"loss": 0.5}}, headers=owner.headers)
    assert r.status_code == 201 and r.json()["values"] == {"loss": 0.5}
    points = [{"values": {"loss": 0.25, "acc": i}} for i in range(100)]
    r = await client.post(base + "/metrics", json=points, headers=owner.headers)
    assert r.status_code == 201
    for bad in ({"values": {"loss": "x"}}, [{"values": {"a": True}}], {"values": {}}):
        r = await client.post(base + "/metrics", json=bad, headers=owner.headers)
        assert r.status_code == 400, bad
    r = await client.post(
        base + "/metrics",
        content=b'{"values": {"loss": NaN}}',
        headers={**owner.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    app.state.settings.max_metrics_per_request = 10
    r = await client.post(base + "/metrics", json=points, headers=owner.headers)
    assert r.status_code == 413
    r = await client.get(base + "/metrics", headers=owner.headers)
    assert r.json()["count"] == 101
    r = await client.get(base, headers=owner.headers)
    assert r.json()["last_metric"] == {"loss": 0.25, "acc": 99}
    r = await client.post(base + "/logs", json=["a", "b"], headers=owner.headers)
    assert r.status_code == 200
    r = await client.get(base + "/logs", headers=owner.headers)
    assert r.text == "a\nb\n"
    r = await client.post(base + "/stop", headers=owner.headers)
    r = await client.get(base + "/statuses", headers=owner.headers)
    assert [s["status"] for s in r.json()["results"]] == ["created", "running", "stopped"]


async def test_reconciler_starts_observes_and_never_twice(client, owner, app):
    await _project(client, owner)
    ids = []
    for _ in range(3):
        r = await client.post(
            "/api/v1/alice/p/experiments", json={"config": CONFIG}, headers=owner.headers
        )
        ids.append(r.json()["id"])
    runtime = FakeRuntime(capacity=2)
    rec1 = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    rec2 = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    await rec1.reconcile_once()
    await rec2.reconcile_once()
    await rec1.reconcile_once()
    assert sum(runtime.starts.values()) == 2 and max(runtime.starts.values()) == 1
    key0 = next(k for k in runtime.states if k.startswith(f"experiment-{ids[0]}-"))
    spec = runtime.specs[key0]
    assert spec.command == "echo 0.1" and spec.env["PLX_EXPERIMENT_ID"] == str(ids[0])
    r = await client.get(f"/api/v1/alice/p/experiments/{ids[2]}", headers=owner.headers)
    assert r.json()["last_status"] == "scheduled"
    # run token: own endpoints yes, another run's no
    token = {"Authorization": f"token {spec.env['PLX_TOKEN']}"}
    r = await client.post(
        f"/api/v1/alice/p/experiments/{ids[0]}/metrics",
        json={"values": {"loss": 0.25}},
        headers=token,
    )
    assert r.status_code == 201
    r = await client.post(
        f"/api/v1/alice/p/experiments/{ids[1]}/metrics",
        json={"values": {"loss": 0.25}},
        headers=token,
    )
    assert r.status_code == 403
    runtime.set_status(key0, "succeeded", exit_code=0)
    await rec2.reconcile_once()
    await rec1.reconcile_once()
    r = await client.get(f"/api/v1/alice/p/experiments/{ids[0]}/statuses", headers=owner.headers)
    assert [s["status"] for s in r.json()["results"]] == [
        "created",
        "scheduled",
        "starting",
        "running",
        "succeeded",
    ]
    assert key0 not in runtime.states  # cleaned
    assert sum(runtime.starts.values()) == 3
    # stop a running one, vanish another
    r = await client.post(f"/api/v1/alice/p/experiments/{ids[1]}/stop", headers=owner.headers)
    key2 = next(k for k in runtime.states if k.startswith(f"experiment-{ids[2]}-"))
    runtime.vanish(key2)
    await rec1.reconcile_once()
    r = await client.get(f"/api/v1/alice/p/experiments/{ids[1]}", headers=owner.headers)
    assert r.json()["last_status"] == "stopped"
    r = await client.get(f"/api/v1/alice/p/experiments/{ids[2]}", headers=owner.headers)
    assert r.json()["last_status"] == "failed"


async def test_jobs_and_builds(client, owner, app):
    await _project(client, owner)
    cfg = "version: 1\nkind: job\nbuild:\n  image: busybox\nrun:\n  cmd: echo hello\n"
    r = await client.post("/api/v1/alice/p/jobs", json={"config": cfg}, headers=owner.headers)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["unique_name"] == f"alice.p.jobs.{job['id']}" and job["build_job"]
    r = await client.post("/api/v1/alice/p/jobs", json={"config": cfg}, headers=owner.headers)
    assert r.json()["build_job"] == job["build_job"]  # de-duplicated
    r = await client.get("/api/v1/alice/p/builds", headers=owner.headers)
    assert r.json()["count"] == 1
    r = await client.get("/api/v1/alice/p", headers=owner.headers)
    assert r.json()["num_jobs"] == 2 and r.json()["num_builds"] == 1
    r = await client.post(f"/api/v1/alice/p/jobs/{job['id']}/restart", headers=owner.headers)
    assert r.status_code == 201
    r = await client.post("/api/v1/alice/p/jobs", json={"config": CONFIG}, headers=owner.headers)
    assert r.status_code == 400


async def test_local_build_is_recorded_with_a_readable_log(client, owner, app, tmp_path):
    from app.runtimes.local import LocalRuntime

    await _project(client, owner)
    config = "version: 1\nkind: build\nbuild:\n  image: python:3.11\n"
    r = await client.post("/api/v1/alice/p/builds", json={"config": config}, headers=owner.headers)
    assert r.status_code == 201, r.text
    base = f"/api/v1/alice/p/builds/{r.json()['id']}"
    runtime = LocalRuntime(tmp_path / "runtime", max_parallel=1)
    rec = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    await rec.reconcile_once()
    await rec.reconcile_once()
    body = (await client.get(base, headers=owner.headers)).json()
    assert body["last_status"] == "succeeded"
    logs = await client.get(base + "/logs", headers=owner.headers)
    assert logs.status_code == 200 and "does not build images" in logs.text
    assert runtime.__class__.__name__ == "LocalRuntime" and await runtime.list_workloads() == {}


async def test_only_experiments_that_will_run_wake_the_reconciler(client, owner, app):
    await _project(client, owner)
    wakes: list[int] = []

    class Counter:
        def wake(self) -> None:
            wakes.append(1)

    previous = getattr(app.state, "reconciler", None)
    app.state.reconciler = Counter()
    try:
        tracking = {"version": 1, "kind": "experiment"}
        r = await client.post(
            "/api/v1/alice/p/experiments", json={"config": tracking}, headers=owner.headers
        )
        assert r.status_code == 201
        assert wakes == []  # a tracking-only experiment never starts: no pass is owed
        r = await client.post(
            "/api/v1/alice/p/experiments", json={"config": CONFIG}, headers=owner.headers
        )
        assert r.status_code == 201
        assert wakes == [1]
    finally:
        app.state.reconciler = previous


async def test_detail_facts_follow_the_viewer_and_the_row(client, owner, other, make_user):
    await _project(client, owner)  # public: `other` may read it
    admin = await make_user("boss", superuser=True)
    base = "/api/v1/alice/p/experiments"
    r = await client.post(base, json={"config": CONFIG}, headers=admin.headers)
    exp_id = r.json()["id"]
    assert (await client.post(f"{base}/{exp_id}/bookmark", headers=owner.headers)).status_code in (
        200,
        201,
    )
    mine = (await client.get(f"{base}/{exp_id}", headers=owner.headers)).json()
    theirs = (await client.get(f"{base}/{exp_id}", headers=other.headers)).json()
    assert mine["bookmarked"] is True and theirs["bookmarked"] is False
    assert mine["user"] == "boss"  # the creator, not the project's owner
    assert mine["num_jobs"] == 1 and mine["is_clone"] is False
    assert mine["has_tensorboard"] is False and mine["original"] is None
    r = await client.post(f"{base}/{exp_id}/copy", json={}, headers=owner.headers)
    assert r.status_code == 201, r.text
    copy = (await client.get(f"{base}/{r.json()['id']}", headers=owner.headers)).json()
    assert copy["is_clone"] is True and copy["original"] == f"alice.p.{exp_id}"
    assert copy["bookmarked"] is False and copy["user"] == "alice"


async def test_create_writes_the_row_and_one_created_status_and_a_taken_name_changes_nothing(
    client, owner
):
    await _project(client, owner)
    base = "/api/v1/alice/p/experiments"
    r = await client.post(base, json={"config": CONFIG, "name": "first"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    exp = r.json()
    r = await client.get(f"{base}/{exp['id']}/statuses", headers=owner.headers)
    [status] = r.json()["results"]
    assert status["status"] == "created" and status["created_at"] == exp["updated_at"]
    assert exp["declarations"] == {"lr": 0.1} and exp["config"]["run"]["cmd"] == "echo {{ lr }}"
    r = await client.post(base, json={"config": CONFIG, "name": "first"}, headers=owner.headers)
    assert r.status_code == 400
    r = await client.post(base, json={"config": CONFIG, "name": "second"}, headers=owner.headers)
    assert r.status_code == 201  # the refused one left the session usable and nothing behind
    r = await client.get(base, headers=owner.headers)
    assert sorted(e["name"] for e in r.json()["results"]) == ["first", "second"]
    r = await client.get(f"{base}/{exp['id']}/jobs", headers=owner.headers)
    assert r.json()["count"] == 1  # the master replica, written after the experiment
