"""Who may do what on run routes: anonymous, other users (private / public), run tokens."""

from __future__ import annotations

from app.db import session_scope
from app.models import User
from app.reconciler.groups import reconcile_groups
from app.reconciler.loop import Reconciler
from app.runtimes.fake import FakeRuntime
from app.services.users import create_run_token

TRACKING = {"version": 1, "kind": "experiment"}
JOB = "version: 1\nkind: job\nbuild:\n  image: busybox\nrun:\n  cmd: echo hello\n"


async def _setup(client, owner, *, public: bool) -> tuple[int, int]:
    r = await client.post(
        "/api/v1/projects", json={"name": "p", "is_public": public}, headers=owner.headers
    )
    assert r.status_code == 201
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": TRACKING}, headers=owner.headers
    )
    exp_id = r.json()["id"]
    r = await client.post("/api/v1/alice/p/jobs", json={"config": JOB}, headers=owner.headers)
    return exp_id, r.json()["id"]


def _reads(exp_id: int, job_id: int) -> list[tuple[str, str, object]]:
    e, j = f"/api/v1/alice/p/experiments/{exp_id}", f"/api/v1/alice/p/jobs/{job_id}"
    return [
        ("GET", "/api/v1/alice/p/experiments", None),
        ("GET", e, None),
        ("GET", e + "/statuses", None),
        ("GET", e + "/metrics", None),
        ("GET", e + "/jobs", None),
        ("GET", "/api/v1/alice/p/jobs", None),
        ("GET", j, None),
        ("GET", j + "/statuses", None),
        ("GET", "/api/v1/alice/p/builds", None),
    ]


def _writes(exp_id: int, job_id: int) -> list[tuple[str, str, object]]:
    e, j = f"/api/v1/alice/p/experiments/{exp_id}", f"/api/v1/alice/p/jobs/{job_id}"
    return [
        ("POST", "/api/v1/alice/p/experiments", {"config": TRACKING}),
        ("PATCH", e, {"description": "x"}),
        ("POST", e + "/stop", None),
        ("POST", e + "/metrics", {"values": {"loss": 1}}),
        ("POST", e + "/statuses", {"status": "running"}),
        ("POST", e + "/logs", ["line"]),
        ("POST", e + "/_heartbeat", None),
        ("POST", e + "/restart", None),
        ("POST", "/api/v1/alice/p/experiments/delete", {"ids": [exp_id]}),
        ("DELETE", e, None),
        ("POST", "/api/v1/alice/p/jobs", {"config": JOB}),
        ("PATCH", j, {"description": "x"}),
        ("POST", j + "/stop", None),
        ("POST", j + "/restart", None),
        ("POST", j + "/statuses", {"status": "running"}),
        ("DELETE", j, None),
    ]


async def _unchanged(client, owner, exp_id: int, job_id: int) -> None:
    r = await client.get(f"/api/v1/alice/p/experiments/{exp_id}", headers=owner.headers)
    assert r.json()["last_status"] == "created" and r.json()["description"] is None
    assert r.json()["last_metric"] is None
    r = await client.get("/api/v1/alice/p/experiments", headers=owner.headers)
    assert r.json()["count"] == 1
    r = await client.get(f"/api/v1/alice/p/jobs/{job_id}", headers=owner.headers)
    assert r.json()["last_status"] == "created"


async def test_anonymous_gets_401(client, owner):
    exp_id, job_id = await _setup(client, owner, public=True)
    for method, path, body in _reads(exp_id, job_id) + _writes(exp_id, job_id):
        r = await client.request(method, path, json=body)
        assert r.status_code == 401, (method, path)
        assert r.headers["WWW-Authenticate"].lower() == "token"
    await _unchanged(client, owner, exp_id, job_id)


async def test_other_user_private_project_404(client, owner, other):
    exp_id, job_id = await _setup(client, owner, public=False)
    for method, path, body in _reads(exp_id, job_id) + _writes(exp_id, job_id):
        r = await client.request(method, path, json=body, headers=other.headers)
        assert r.status_code == 404, (method, path)
        assert r.json() == {"detail": "Not found."}
    await _unchanged(client, owner, exp_id, job_id)


async def test_other_user_public_project_reads_but_writes_403(client, owner, other):
    exp_id, job_id = await _setup(client, owner, public=True)
    for method, path, body in _reads(exp_id, job_id):
        r = await client.request(method, path, json=body, headers=other.headers)
        assert r.status_code == 200, (method, path, r.text)
    for method, path, body in _writes(exp_id, job_id):
        r = await client.request(method, path, json=body, headers=other.headers)
        assert r.status_code == 403, (method, path, r.text)
    await _unchanged(client, owner, exp_id, job_id)


async def test_run_token_acts_only_on_its_own_run(client, owner, app):
    exp_a, job_id = await _setup(client, owner, public=False)
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": TRACKING}, headers=owner.headers
    )
    exp_b = r.json()["id"]
    async with session_scope(app.state.sessionmaker) as session:
        user = await session.get(User, owner.id)
        key = await create_run_token(session, user, kind="experiment", run_id=exp_a)
    token = {"Authorization": f"token {key}"}
    a, b = (f"/api/v1/alice/p/experiments/{i}" for i in (exp_a, exp_b))
    calls = [
        ("POST", "/metrics", {"values": {"loss": 0.5}}, 201),
        ("POST", "/statuses", {"status": "running"}, 201),
        ("POST", "/logs", ["from the run"], 200),
        ("POST", "/_heartbeat", None, 200),
    ]
    for method, suffix, body, _ in calls:
        r = await client.request(method, b + suffix, json=body, headers=token)
        assert r.status_code == 403, (suffix, r.text)
    r = await client.post(
        f"/api/v1/alice/p/jobs/{job_id}/statuses", json={"status": "running"}, headers=token
    )
    assert r.status_code == 403
    r = await client.get(b, headers=owner.headers)
    assert r.json()["last_metric"] is None and r.json()["last_status"] == "created"
    assert (await client.get(b + "/logs", headers=owner.headers)).status_code == 404
    for method, suffix, body, code in calls:
        r = await client.request(method, a + suffix, json=body, headers=token)
        assert r.status_code == code, (suffix, r.text)
    assert (await client.get(a, headers=token)).status_code == 200
    # The tracking client's log_tags / log_params / run_env PATCH its own experiment.
    r = await client.patch(
        a,
        json={"tags": ["t"], "declarations": {"lr": 0.1}, "merge": True, "run_env": {"host": "x"}},
        headers=token,
    )
    assert r.status_code == 200 and r.json()["tags"] == ["t"], r.text
    assert r.json()["declarations"]["lr"] == 0.1 and r.json()["run_env"] == {"host": "x"}
    assert (await client.patch(b, json={"tags": ["t"]}, headers=token)).status_code == 403
    r = await client.get(a, headers=owner.headers)
    assert r.json()["last_metric"] == {"loss": 0.5} and r.json()["last_status"] == "running"
    assert (await client.get(a + "/logs", headers=owner.headers)).text == "from the run\n"
    # owner-level actions stay with the owner, even on the token's own run
    for method, suffix in (("DELETE", ""), ("POST", "/stop"), ("POST", "/restart")):
        r = await client.request(method, a + suffix, headers=token)
        assert r.status_code == 403, suffix
    r = await client.post("/api/v1/alice/p/experiments", json={"config": TRACKING}, headers=token)
    assert r.status_code == 403
    r = await client.get("/api/v1/alice/p/experiments", headers=owner.headers)
    assert r.json()["count"] == 2


async def _run_token(app, owner, kind: str, run_id: int) -> dict[str, str]:
    async with session_scope(app.state.sessionmaker) as session:
        user = await session.get(User, owner.id)
        key = await create_run_token(session, user, kind=kind, run_id=run_id)
    return {"Authorization": f"token {key}"}


async def test_deleting_a_project_or_group_revokes_its_runs_tokens(client, owner, app):
    exp_id, job_id = await _setup(client, owner, public=False)
    exp_token = await _run_token(app, owner, "experiment", exp_id)
    job_token = await _run_token(app, owner, "job", job_id)
    group = "version: 1\nkind: group\nhptuning:\n  matrix:\n    lr:\n      values: [0.1, 0.2]\n"
    r = await client.post(
        "/api/v1/alice/p/groups",
        json={"content": group + "run:\n  cmd: echo\n"},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    group_id = r.json()["id"]
    rec = Reconciler(
        app.state.settings, app.state.sessionmaker, FakeRuntime(), steps=[reconcile_groups]
    )
    await rec.reconcile_once()  # materialises the group's experiments
    r = await client.get(f"/api/v1/alice/p/groups/{group_id}/experiments", headers=owner.headers)
    member = r.json()["results"][0]["id"]
    member_token = await _run_token(app, owner, "experiment", member)
    exps = "/api/v1/alice/p/experiments"
    assert (await client.get(f"{exps}/{member}", headers=member_token)).status_code == 200

    r = await client.delete(f"/api/v1/alice/p/groups/{group_id}", headers=owner.headers)
    assert r.status_code == 204
    # The token is gone with its run: 401 (not a 404 that would still authenticate it).
    assert (await client.get(f"{exps}/{member}", headers=member_token)).status_code == 401
    assert (await client.get(f"{exps}/{exp_id}", headers=exp_token)).status_code == 200

    assert (await client.delete("/api/v1/alice/p", headers=owner.headers)).status_code == 204
    for token in (exp_token, job_token):
        assert (await client.get(f"{exps}/{exp_id}", headers=token)).status_code == 401
    assert (await client.get("/api/v1/users", headers=owner.headers)).status_code == 200
