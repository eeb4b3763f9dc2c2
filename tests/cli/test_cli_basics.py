"""The real polyaxon-cli 0.3.9: config, login, whoami, projects, init, bookmarks, cluster,
versions and the superuser user commands, against a real `plx server`."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import ADMIN, ADMIN_PASSWORD, Cli

pytestmark = pytest.mark.e2e


def test_config_is_written(fresh_cli: Cli):
    config = fresh_cli.state(".polyaxonconfig")
    assert config["host"] == "127.0.0.1" and int(config["http_port"]) == fresh_cli.server.port
    assert config["use_https"] is False


def test_login_with_password_stores_the_token(fresh_cli: Cli):
    out = fresh_cli.ok("login", "-u", ADMIN, "-p", ADMIN_PASSWORD)
    assert "Login successful" in out
    auth = fresh_cli.state(".polyaxonauth")
    # A login issues a new token each time (contract.md 4): the stored one is new and works.
    assert auth["username"] == ADMIN and auth["token"] != fresh_cli.server.token()
    r = fresh_cli.server.api("GET", "/api/v1/users", token=auth["token"])
    assert r.status_code == 200 and r.json()["username"] == ADMIN
    assert ADMIN in fresh_cli.ok("whoami")


def test_login_with_a_token(fresh_cli: Cli):
    out = fresh_cli.ok("login", "--token", fresh_cli.server.token())
    assert "Login successful" in out
    assert fresh_cli.state(".polyaxonauth")["username"] == ADMIN


def test_bad_credentials_fail_login(fresh_cli: Cli):
    result = fresh_cli.run("login", "-u", ADMIN, "-p", "wrong-password")
    assert result.returncode == 1 and "Could not login" in result.output, str(result)
    result = fresh_cli.run("login", "--token", "0" * 40)
    assert result.returncode == 1, str(result)
    assert not (fresh_cli.home / ".polyaxon" / ".polyaxonauth").exists()


def test_version_check_passes_after_many_commands(admin_cli: Cli):
    # The CLI checks /versions/cli from the 4th command after login on.
    for _ in range(4):
        out = admin_cli.ok("whoami")
        assert "upgrade" not in out.lower()
    assert "0.3.9" in admin_cli.ok("version", "--cli")
    cached = admin_cli.state(".polyaxoncli")
    assert cached["min_version"] == "0.3.0" and cached["current_version"] == "0.3.9"


def test_version_of_the_platform(admin_cli: Cli):
    out = admin_cli.ok("version", "--platform")
    assert "0.3.9" in out


def test_project_create_list_get_update_init(admin_cli: Cli):
    out = admin_cli.ok(
        "project", "create", "--name=quick-start", "--description=Quick start", "--tags=a,b"
    )
    assert "was created successfully" in out
    r = admin_cli.server.api("GET", "/api/v1/admin/quick-start")
    assert r.status_code == 200 and r.json()["tags"] == ["a", "b"]

    out = admin_cli.ok("project", "list")
    assert "quick-start" in out

    result = admin_cli.run("project", "create", "--name=quick-start")
    assert result.returncode == 1 and "Could not create project" in result.output

    out = admin_cli.ok("project", "-p", "quick-start", "get")
    assert "Quick start" in out

    # `update` strips the tags it splits (`create` does not).
    admin_cli.ok("project", "-p", "quick-start", "update", "--description=Changed", "--tags=c, d")
    r = admin_cli.server.api("GET", "/api/v1/admin/quick-start")
    assert r.json()["description"] == "Changed" and r.json()["tags"] == ["c", "d"]

    workdir = admin_cli.cwd / "quick-start"
    workdir.mkdir()
    out = admin_cli.ok("init", "quick-start", cwd=workdir)
    project = json.loads((workdir / ".polyaxon" / ".polyaxonproject").read_text())
    assert project["user"] == ADMIN and project["name"] == "quick-start"
    # The project context is picked up from the working directory.
    assert "Changed" in admin_cli.ok("project", "get", cwd=workdir)


def test_private_project(admin_cli: Cli):
    admin_cli.ok("project", "create", "--name=hidden", "--private")
    r = admin_cli.server.api("GET", "/api/v1/admin/hidden")
    assert r.json()["is_public"] is False


def test_project_delete(admin_cli: Cli):
    admin_cli.ok("project", "create", "--name=to-delete")
    out = admin_cli.ok("project", "-p", "to-delete", "delete", stdin="y\n")
    assert "was delete successfully" in out or "deleted" in out.lower()
    assert admin_cli.server.api("GET", "/api/v1/admin/to-delete").status_code == 404


def test_project_bookmarks(admin_cli: Cli):
    admin_cli.ok("project", "create", "--name=marked")
    admin_cli.ok("project", "-p", "marked", "bookmark")
    out = admin_cli.ok("bookmark", "projects")
    assert "marked" in out and "Bookmarked projects for user `admin`" in out
    admin_cli.ok("project", "-p", "marked", "unbookmark")
    out = admin_cli.ok("bookmark", "projects")
    assert "admin.marked" not in out
    # (other modules bookmark experiments, groups and jobs on the same server)
    assert "No bookmarked builds" in admin_cli.ok("bookmark", "builds")


def test_cluster(admin_cli: Cli):
    out = admin_cli.ok("cluster")
    assert "Cluster info" in out
    out = admin_cli.ok("cluster", "-n", "1")
    assert "hostname" in out


def test_superuser_and_user_commands(admin_cli: Cli):
    server = admin_cli.server
    r = server.api("POST", "/api/v1/users", json={"username": "bob", "password": "bob-pass-123"})
    assert r.status_code == 201, r.text
    admin_cli.ok("superuser", "grant", "bob")
    assert server.api("GET", "/api/v1/users", token=server.token("bob", "bob-pass-123")).json()[
        "is_superuser"
    ]
    admin_cli.ok("superuser", "revoke", "bob")
    bob_token = server.token("bob", "bob-pass-123")
    assert not server.api("GET", "/api/v1/users", token=bob_token).json()["is_superuser"]
    admin_cli.ok("user", "activate", "bob")
    admin_cli.ok("user", "delete", "bob")
    assert server.api("GET", "/api/v1/users", token=bob_token).status_code == 401


def test_logout_forgets_the_token(polyaxon_bin, plx_server, tmp_path):
    from tests.cli.conftest import make_cli

    cli = make_cli(polyaxon_bin, plx_server, tmp_path)
    cli.ok("login", "-u", ADMIN, "-p", ADMIN_PASSWORD)
    cli.ok("logout")
    assert not (cli.home / ".polyaxon" / ".polyaxonauth").exists()
