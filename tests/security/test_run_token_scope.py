"""A run's token (PLX_TOKEN) does what its run needs and nothing else, and ends with the run
(issue 16.3, contract.md 3)."""

from __future__ import annotations

import asyncio
import re

import pytest

from app.db import session_scope
from app.models import User
from app.services.users import create_run_token
from tests.api.test_code import upload, v0_tarball
from tests.security.wsclient import handshake

TRACKING = {"version": 1, "kind": "experiment"}
JOB = "version: 1\nkind: job\nbuild:\n  image: busybox\nrun:\n  cmd: echo hello\n"
P = "/api/v1/{username}/{project}"
# What an experiment's token may call on its own experiment; every other route is 403.
EXPERIMENT_ALLOWED = {
    ("GET", P + "/experiments/{exp_id}"),
    ("PATCH", P + "/experiments/{exp_id}"),
    ("PUT", P + "/experiments/{exp_id}"),
    ("GET", P + "/experiments/{exp_id}/statuses"),
    ("POST", P + "/experiments/{exp_id}/statuses"),
    ("GET", P + "/experiments/{exp_id}/metrics"),
    ("POST", P + "/experiments/{exp_id}/metrics"),
    ("GET", P + "/experiments/{exp_id}/logs"),
    ("POST", P + "/experiments/{exp_id}/logs"),
    ("POST", P + "/experiments/{exp_id}/_heartbeat"),
    ("POST", P + "/experiments/{exp_id}/jobs/{job_id}/_heartbeat"),
    ("GET", P + "/repo/download"),
}
JOB_ALLOWED = {
    ("GET", P + "/jobs/{run_id}"),
    ("GET", P + "/jobs/{run_id}/statuses"),
    ("POST", P + "/jobs/{run_id}/statuses"),
    ("GET", P + "/jobs/{run_id}/logs"),
    ("POST", P + "/jobs/{run_id}/logs"),
    ("POST", P + "/jobs/{run_id}/_heartbeat"),
    ("GET", P + "/repo/download"),
}


async def _token(app, owner, kind: str, run_id: int) -> dict[str, str]:
    async with session_scope(app.state.sessionmaker) as session:
        user = await session.get(User, owner.id)
        key = await create_run_token(session, user, kind=kind, run_id=run_id)
    return {"Authorization": f"token {key}"}


async def _project(client, owner) -> tuple[int, int]:
    r = await client.post(
        "/api/v1/projects", json={"name": "p", "is_public": False}, headers=owner.headers
    )
    assert r.status_code == 201
    r = await upload(
        client,
        owner,
        v0_tarball({"train.py": b"print(1)\n"}),
        url=f"{P}/repo/upload".format(username="alice", project="p"),
    )
    assert r.status_code in (200, 201), r.text
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": TRACKING}, headers=owner.headers
    )
    exp_id = r.json()["id"]
    r = await client.post("/api/v1/alice/p/jobs", json={"config": JOB}, headers=owner.headers)
    return exp_id, r.json()["id"]


def _operations(app) -> list[tuple[str, str]]:
    """Every route that asks for credentials, from the OpenAPI document."""
    ops = []
    for path, items in app.openapi()["paths"].items():
        for method, op in items.items():
            if op.get("security"):
                ops.append((method.upper(), path))
    return ops


def _fill(template: str, ids: dict[str, int]) -> str:
    values = {"username": "alice", "project": "p", "kind": "projects", **ids}
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), 1)), template)


async def _sweep(client, app, token, allowed, ids) -> None:
    """Each route with the token: the allowed ones answer (anything but 401/403), every other
    one 403 before touching anything."""
    ops = _operations(app)
    assert len(ops) > 80 and allowed <= set(ops)
    # Writes last among the allowed (a status post may end the run).
    for method, template in sorted(ops, key=lambda op: ((op in allowed), op[0] == "POST")):
        url = _fill(template, ids)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        r = await client.request(method, url, json=body, headers=token)
        if (method, template) in allowed:
            assert r.status_code not in (401, 403), (method, template, r.text)
        else:
            assert r.status_code == 403, (method, template, r.status_code, r.text)


async def test_experiment_token_reaches_only_its_own_run(client, app, owner):
    exp_id, job_id = await _project(client, owner)
    token = await _token(app, owner, "experiment", exp_id)
    ids = {"exp_id": exp_id, "run_id": job_id}
    await _sweep(client, app, token, EXPERIMENT_ALLOWED, ids)
    # Nothing outside the run changed: the project, its job and its listings are intact.
    r = await client.get("/api/v1/alice/p", headers=owner.headers)
    assert r.status_code == 200 and r.json()["is_public"] is False
    r = await client.get("/api/v1/alice/p/experiments", headers=owner.headers)
    assert r.json()["count"] == 1
    r = await client.get(f"/api/v1/alice/p/jobs/{job_id}", headers=owner.headers)
    assert r.json()["last_status"] == "created"


async def test_job_token_reaches_only_its_own_run(client, app, owner):
    exp_id, job_id = await _project(client, owner)
    token = await _token(app, owner, "job", job_id)
    await _sweep(client, app, token, JOB_ALLOWED, {"exp_id": exp_id, "run_id": job_id})
    r = await client.get(f"/api/v1/alice/p/experiments/{exp_id}", headers=owner.headers)
    assert r.json()["last_status"] == "created"


async def test_run_token_refused_on_the_change_feed_and_listings(client, app, owner):
    exp_id, _ = await _project(client, owner)
    token = await _token(app, owner, "experiment", exp_id)
    for url in (
        "/api/v1/alice/p/events",
        "/api/v1/alice/p/experiments",
        "/api/v1/alice/p/groups",
        "/api/v1/alice",
        "/api/v1/alice/p/notebook",
        "/api/v1/alice/p/repo",
        "/api/v1/users",
    ):
        r = await client.get(url, headers=token)
        assert r.status_code == 403 and "own run" in r.json()["detail"], url
    # Another run of the same owner: 403 on the routes its own run may use.
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": TRACKING}, headers=owner.headers
    )
    other = r.json()["id"]
    r = await client.post(f"/api/v1/alice/p/experiments/{other}/logs", json=["x"], headers=token)
    assert r.status_code == 403


async def test_run_token_downloads_only_the_code_its_run_runs(client, app, owner):
    exp_id, _ = await _project(client, owner)
    token = await _token(app, owner, "experiment", exp_id)
    own = (await client.get("/api/v1/alice/p/repo", headers=owner.headers)).json()["commit"]
    r = await upload(
        client,
        owner,
        v0_tarball({"new.py": b"x\n"}),
        url=f"{P}/repo/upload".format(username="alice", project="p"),
    )
    newer = r.json()["commit"]
    assert newer != own
    for query in (f"?commit={own}", f"?commit={own[:10]}", ""):
        r = await client.get(f"/api/v1/alice/p/repo/download{query}", headers=token)
        assert r.status_code == 200 and r.headers["x-plx-commit"] == own, query
    r = await client.get(f"/api/v1/alice/p/repo/download?commit={newer}", headers=token)
    assert r.status_code == 403
    r = await client.get(f"/api/v1/alice/p/repo/download?commit={newer}", headers=owner.headers)
    assert r.status_code == 200


async def test_in_cluster_client_calls_keep_working(client, app, owner):
    """What polyaxon-client 0.3.9 sends from inside a run (polyaxon-cli-0.3.9.md 6)."""
    exp_id, _ = await _project(client, owner)
    token = await _token(app, owner, "experiment", exp_id)
    e = f"/api/v1/alice/p/experiments/{exp_id}/"
    calls = [
        ("PATCH", e, {"run_env": {"pid": 1, "hostname": "h"}}, 200),
        ("PATCH", e, {"declarations": {"lr": 0.1}, "merge": True}, 200),
        ("PATCH", e, {"tags": ["a"], "merge": True}, 200),
        ("POST", e + "statuses/", {"status": "running"}, 201),
        (
            "POST",
            e + "metrics/",
            [{"values": {"loss": 1.0, "step": 0}, "created_at": "2026-11-23 12:16:05.7+00:00"}],
            201,
        ),
        ("POST", e + "_heartbeat/", None, 200),
        ("GET", e, None, 200),
        ("POST", e + "statuses/", {"status": "succeeded"}, 201),
    ]
    for method, url, body, code in calls:
        headers = {"Authorization": token["Authorization"].replace("token", "Token")}
        r = await client.request(method, url, json=body, headers=headers)
        assert r.status_code == code, (method, url, r.text)


@pytest.fixture
def settings_overrides():
    # Every token looked up (no cache), so the test sees the revocation at its time.
    return {"run_token_grace_seconds": 0.5, "auth_cache_seconds": 0}


async def test_token_revoked_after_its_run_is_done(client, app, owner):
    exp_id, _ = await _project(client, owner)
    token = await _token(app, owner, "experiment", exp_id)
    e = f"/api/v1/alice/p/experiments/{exp_id}"
    r = await client.post(e + "/statuses", json={"status": "succeeded"}, headers=token)
    assert r.status_code == 201
    # Within the grace, in-flight posts still land.
    r = await client.post(e + "/logs", json=["late line"], headers=token)
    assert r.status_code == 200
    await asyncio.sleep(0.7)
    for method, suffix, body in (
        ("POST", "/logs", ["after the end"]),
        ("POST", "/metrics", {"values": {"loss": 2.0}}),
        ("GET", "", None),
        ("GET", "/repo/download", None),
    ):
        url = "/api/v1/alice/p/repo/download" if suffix == "/repo/download" else e + suffix
        r = await client.request(method, url, json=body, headers=token)
        assert r.status_code == 401, (suffix, r.text)
        assert r.headers["www-authenticate"] == "token"
    assert (await client.get(e + "/logs", headers=owner.headers)).text == "late line\n"
    r = await client.get(e, headers=owner.headers)
    assert r.json()["last_metric"] is None


async def test_run_token_refused_on_websockets(client, app, owner):
    exp_id, _ = await _project(client, owner)
    token = await _token(app, owner, "experiment", exp_id)
    path = f"/ws/v1/alice/p/experiments/{exp_id}/logs"
    first = await handshake(app, path, token)
    assert first["type"] == "websocket.close" and first["code"] == 4403, first
    first = await handshake(app, path, {"Authorization": f"token {owner.token}"})
    assert first["type"] == "websocket.accept", first


def test_token_end_of_runs():
    from datetime import UTC, datetime, timedelta

    from app.services.run_tokens import snapshot_window, token_end

    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert token_end("running", None, grace=10, snapshot_pending=False) is None
    assert token_end("created", None, grace=10, snapshot_pending=True) is None
    for status in ("succeeded", "failed", "stopped"):
        assert token_end(status, t, grace=10, snapshot_pending=False) == t + timedelta(seconds=10)
    # A notebook stopped with `commit` keeps its token while its pod uploads the snapshot.
    assert snapshot_window() >= 30
    end = token_end("stopped", t, grace=10, snapshot_pending=True)
    assert end == t + timedelta(seconds=snapshot_window())
