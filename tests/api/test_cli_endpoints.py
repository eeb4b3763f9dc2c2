"""Endpoints the polyaxon-cli 0.3.9 calls besides the seeds: versions, log handler, cluster,
bookmark lists and the superuser actions on users."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from app.config import Settings
from app.db import session_scope
from app.models import Experiment, ExperimentGroup, Project, User


async def test_versions_answer_without_authentication(client):
    r = await client.get("/api/v1/versions/cli/")
    assert r.status_code == 200
    body = r.json()
    assert body == {"latest_version": "0.3.9", "min_version": "0.3.0"}
    r = await client.get("/api/v1/versions/platform")
    assert r.status_code == 200 and set(r.json()) == {"latest_version", "min_version"}
    r = await client.get("/api/v1/versions/chart/")
    assert r.status_code == 200 and isinstance(r.json()["version"], str)


async def test_versions_ignore_an_invalid_token(client):
    # The CLI purges its login on a 403 here, so a stale token must not break the check.
    r = await client.get("/api/v1/versions/cli/", headers={"Authorization": "Token nope"})
    assert r.status_code == 200


async def test_platform_and_chart_versions_agree(client):
    platform = (await client.get("/api/v1/versions/platform/")).json()
    chart = (await client.get("/api/v1/versions/chart/")).json()
    assert platform == {"latest_version": "0.3.9", "min_version": "0.3.0"}
    assert chart == {"version": platform["latest_version"]}


class TestCliVersionSettings:
    @pytest.fixture
    def settings_overrides(self):
        return {"cli_min_version": "0.4.0", "cli_latest_version": "0.4.2"}

    async def test_cli_and_lib_answers_follow_the_settings(self, client):
        for path in ("/api/v1/versions/cli/", "/api/v1/versions/lib/"):
            r = await client.get(path)
            assert r.status_code == 200
            assert r.json() == {"latest_version": "0.4.2", "min_version": "0.4.0"}

    async def test_platform_and_chart_do_not_move_with_the_cli(self, client):
        platform = (await client.get("/api/v1/versions/platform/")).json()
        chart = (await client.get("/api/v1/versions/chart/")).json()
        assert platform == {"latest_version": "0.3.9", "min_version": "0.3.0"}
        assert chart == {"version": "0.3.9"}


def _settings_from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for variable in ("PLX_CLI_MIN_VERSION", "PLX_CLI_LATEST_VERSION"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    return Settings()


def test_cli_version_settings_default_to_what_plx_speaks(monkeypatch):
    settings = _settings_from_env(monkeypatch)
    assert (settings.cli_min_version, settings.cli_latest_version) == ("0.3.0", "0.3.9")


def test_raising_only_the_minimum_raises_the_latest_with_it(monkeypatch):
    settings = _settings_from_env(monkeypatch, PLX_CLI_MIN_VERSION="0.4.0")
    assert (settings.cli_min_version, settings.cli_latest_version) == ("0.4.0", "0.4.0")
    # Compared as numbers: 0.3.10 is newer than 0.3.9.
    settings = _settings_from_env(monkeypatch, PLX_CLI_MIN_VERSION="0.3.10")
    assert settings.cli_latest_version == "0.3.10"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PLX_CLI_MIN_VERSION": "latest"}, "PLX_CLI_MIN_VERSION must be a version like 0.3.9"),
        ({"PLX_CLI_LATEST_VERSION": "0.4.x"}, "PLX_CLI_LATEST_VERSION must be a version"),
        ({"PLX_CLI_LATEST_VERSION": "v0.4"}, "PLX_CLI_LATEST_VERSION must be a version"),
        (
            {"PLX_CLI_MIN_VERSION": "0.4.0", "PLX_CLI_LATEST_VERSION": "0.3.9"},
            "PLX_CLI_MIN_VERSION (0.4.0) is newer than PLX_CLI_LATEST_VERSION (0.3.9)",
        ),
    ],
)
def test_bad_cli_version_settings_name_the_variable(monkeypatch, env, message):
    with pytest.raises(ValidationError) as excinfo:
        _settings_from_env(monkeypatch, **env)
    assert message in str(excinfo.value)


async def test_log_handler_has_no_dsn(client, owner):
    r = await client.get("/api/v1/log_handler/", headers=owner.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["dsn"] is None and isinstance(body["environment"], str) and body["tags"] == {}


async def test_cluster_and_node(client, owner):
    r = await client.get("/api/v1/cluster/")
    assert r.status_code == 401
    r = await client.get("/api/v1/cluster/", headers=owner.headers)
    assert r.status_code == 200
    cluster = r.json()
    assert isinstance(cluster["version_api"], dict) and cluster["version_api"]["runtime"] == "fake"
    (node,) = cluster["nodes"]
    assert node["sequence"] == 1 and re.fullmatch(r"[0-9a-f]{32}", node["uuid"])
    assert node["cpu"] >= 1 and node["gpus"] == []
    r = await client.get("/api/v1/nodes/1/", headers=owner.headers)
    assert r.status_code == 200 and r.json() == node
    r = await client.get("/api/v1/nodes/2", headers=owner.headers)
    assert r.status_code == 404
    r = await client.get("/api/v1/nodes/abc", headers=owner.headers)
    assert r.status_code == 400


async def _project(client, user, name, *, public=True):
    r = await client.post(
        "/api/v1/projects/", json={"name": name, "is_public": public}, headers=user.headers
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_project_bookmarks_are_wrapped_and_paginated(client, owner):
    for name in ("p1", "p2", "p3"):
        await _project(client, owner, name)
        r = await client.post(f"/api/v1/alice/{name}/bookmark/", headers=owner.headers)
        assert r.status_code == 201
    r = await client.get("/api/v1/bookmarks/alice/projects/", headers=owner.headers)
    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 3 and page["next"] is None
    assert [i["content_object"]["name"] for i in page["results"]] == ["p3", "p2", "p1"]
    first = page["results"][0]["content_object"]
    assert first["unique_name"] == "alice.p3" and first["user"] == "alice"
    assert first["bookmarked"] is True and first["created_at"].endswith("+00:00")

    r = await client.get("/api/v1/bookmarks/alice/projects?limit=2", headers=owner.headers)
    page = r.json()
    assert len(page["results"]) == 2 and page["next"].startswith("http://testserver/")
    r = await client.get(page["next"], headers=owner.headers)
    assert [i["content_object"]["name"] for i in r.json()["results"]] == ["p1"]

    await client.delete("/api/v1/alice/p2/unbookmark", headers=owner.headers)
    await client.delete("/api/v1/alice/p3", headers=owner.headers)
    r = await client.get("/api/v1/bookmarks/alice/projects", headers=owner.headers)
    assert [i["content_object"]["name"] for i in r.json()["results"]] == ["p1"]


async def test_bookmarks_of_another_user_are_forbidden(client, owner, other, admin):
    await _project(client, owner, "p1")
    await client.post("/api/v1/alice/p1/bookmark", headers=owner.headers)
    r = await client.get("/api/v1/bookmarks/alice/projects", headers=other.headers)
    assert r.status_code == 403
    r = await client.get("/api/v1/bookmarks/alice/projects", headers=admin.headers)
    assert r.status_code == 200 and r.json()["count"] == 1
    r = await client.get("/api/v1/bookmarks/nobody/projects", headers=admin.headers)
    assert r.status_code == 404
    r = await client.get("/api/v1/bookmarks/alice/projects")
    assert r.status_code == 401


async def test_bookmarked_project_made_private_disappears(client, owner, other):
    await _project(client, owner, "shared")
    r = await client.post("/api/v1/alice/shared/bookmark", headers=other.headers)
    assert r.status_code == 201
    r = await client.get("/api/v1/bookmarks/bob/projects", headers=other.headers)
    assert r.json()["count"] == 1
    await client.patch("/api/v1/alice/shared", json={"is_public": False}, headers=owner.headers)
    r = await client.get("/api/v1/bookmarks/bob/projects", headers=other.headers)
    assert r.json() == {"count": 0, "next": None, "previous": None, "results": []}


async def test_unknown_bookmark_kind(client, owner):
    r = await client.get("/api/v1/bookmarks/alice/widgets", headers=owner.headers)
    assert r.status_code == 400 and "widgets" in r.json()["detail"]


async def test_experiment_and_group_bookmarks_render_v0_fields(app, client, owner):
    # Rows are written directly: this exercises the rendering independently of the run routes.
    await _project(client, owner, "quick")
    async with session_scope(app.state.sessionmaker) as session:
        user = await session.scalar(select(User).where(User.username == "alice"))
        project = await session.scalar(select(Project).where(Project.name == "quick"))
        group = ExperimentGroup(
            user_id=user.id, project_id=project.id, name="g", concurrency=2, search_algorithm="grid"
        )
        session.add(group)
        await session.flush()
        exp = Experiment(
            user_id=user.id,
            project_id=project.id,
            experiment_group_id=group.id,
            name="e",
            declarations={"lr": 0.1},
            last_status="running",
        )
        session.add(exp)
        await session.flush()
        from app.services.projects import set_bookmark

        await set_bookmark(session, user, "experiment", exp.id, on=True)
        await set_bookmark(session, user, "experiment_group", group.id, on=True)
        gid, eid = group.id, exp.id

    r = await client.get("/api/v1/bookmarks/alice/experiments/", headers=owner.headers)
    (item,) = r.json()["results"]
    content = item["content_object"]
    assert content["id"] == eid
    assert content["unique_name"] == f"alice.quick.{gid}.{eid}"
    assert (
        content["project"] == "alice.quick" and content["experiment_group"] == f"alice.quick.{gid}"
    )
    assert content["user"] == "alice" and content["build_job"] is None
    assert content["declarations"] == {"lr": 0.1} and content["last_status"] == "running"
    for kind in ("groups", "experiment_groups"):
        r = await client.get(f"/api/v1/bookmarks/alice/{kind}", headers=owner.headers)
        (item,) = r.json()["results"]
        assert item["content_object"]["unique_name"] == f"alice.quick.{gid}"
        assert item["content_object"]["concurrency"] == 2
    for kind in ("jobs", "builds"):
        r = await client.get(f"/api/v1/bookmarks/alice/{kind}", headers=owner.headers)
        assert r.status_code == 200 and r.json()["count"] == 0


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/api/v1/users/activate/bob/"),
        ("delete", "/api/v1/users/delete/bob/"),
        ("post", "/api/v1/superusers/grant/bob/"),
        ("post", "/api/v1/superusers/revoke/bob/"),
    ],
)
async def test_user_actions_are_superuser_only(client, owner, other, method, path):
    r = await client.request(method, path, headers=owner.headers)
    assert r.status_code == 403
    r = await client.get("/api/v1/users", headers=other.headers)
    assert r.status_code == 200 and r.json()["is_superuser"] is False


async def test_superuser_grant_revoke_activate_delete(app, client, admin, other):
    r = await client.post("/api/v1/superusers/grant/bob/", headers=admin.headers)
    assert r.status_code == 200 and r.json()["is_superuser"] is True
    r = await client.get("/api/v1/users", headers=other.headers)
    assert r.json()["is_superuser"] is True
    r = await client.post("/api/v1/superusers/revoke/bob", headers=admin.headers)
    assert r.status_code == 200 and r.json()["is_superuser"] is False

    async with session_scope(app.state.sessionmaker) as session:
        user = await session.scalar(select(User).where(User.username == "bob"))
        user.is_active = False
    r = await client.get("/api/v1/users", headers=other.headers)
    assert r.status_code == 401
    r = await client.post("/api/v1/users/activate/bob", headers=admin.headers)
    assert r.status_code == 200
    r = await client.get("/api/v1/users", headers=other.headers)
    assert r.status_code == 200

    await _project(client, other, "doomed")
    r = await client.delete("/api/v1/users/delete/bob/", headers=admin.headers)
    assert r.status_code == 204
    r = await client.get("/api/v1/users", headers=other.headers)
    assert r.status_code == 401
    async with session_scope(app.state.sessionmaker) as session:
        assert await session.scalar(select(User).where(User.username == "bob")) is None
        assert await session.scalar(select(Project).where(Project.name == "doomed")) is None
    r = await client.delete("/api/v1/users/delete/bob/", headers=admin.headers)
    assert r.status_code == 404


async def test_superuser_cannot_delete_or_revoke_themselves(client, admin):
    r = await client.delete("/api/v1/users/delete/root", headers=admin.headers)
    assert r.status_code == 400
    r = await client.post("/api/v1/superusers/revoke/root", headers=admin.headers)
    assert r.status_code == 400
    r = await client.get("/api/v1/users", headers=admin.headers)
    assert r.json()["is_superuser"] is True
