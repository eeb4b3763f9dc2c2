"""`plx server` as a real subprocess: health, login, a project over HTTP, `plx users create`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN

pytestmark = pytest.mark.e2e

PLX = str(Path(sys.executable).with_name("plx"))


def _plx(srv, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PLX, *args], input=stdin, env=srv.env, capture_output=True, text=True, timeout=60
    )


def test_server_login_and_project_over_http(server):
    srv = server()
    assert httpx.get(f"{srv.url}/healthz", timeout=5).json() == {"status": "ok"}
    assert httpx.get(f"{srv.url}/readyz/", timeout=5).status_code == 200
    assert (srv.data_dir / "plx.db").exists()

    r = httpx.post(f"{srv.url}/api/v1/users/token",
                   data={"username": ADMIN[0], "password": ADMIN[1]}, timeout=5)
    # A new token per login (contract.md 4); the database file is the server's alone.
    assert r.status_code == 200 and r.json()["token"] != srv.token
    assert (srv.data_dir / "plx.db").stat().st_mode & 0o077 == 0
    with srv.client() as c:
        r = c.post("/api/v1/projects/", json={"name": "mnist", "is_public": False})
        assert r.status_code == 201, r.text
        assert r.json()["unique_name"] == "admin.mnist"
        r = c.get("/api/v1/admin")
        assert r.json()["count"] == 1
        assert r.json()["results"][0]["name"] == "mnist"
    r = httpx.get(f"{srv.url}/api/v1/admin/mnist", timeout=5)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "token"


def test_users_create_with_password_stdin(server):
    srv = server()
    result = _plx(srv, "users", "create", "carol", "--password-stdin", stdin="carol-pass-1\n")
    assert result.returncode == 0, result.stderr
    assert "carol" in result.stdout

    r = httpx.post(f"{srv.url}/api/v1/users/token",
                   json={"username": "carol", "password": "carol-pass-1"}, timeout=5)
    assert r.status_code == 200, r.text
    headers = {"Authorization": f"token {r.json()['token']}"}
    me = httpx.get(f"{srv.url}/api/v1/users", headers=headers, timeout=5).json()
    assert me["username"] == "carol" and me["is_superuser"] is False

    again = _plx(srv, "users", "create", "carol", "--password-stdin", stdin="other-pass-1\n")
    assert again.returncode != 0 and "carol" in again.stderr
    bad = _plx(srv, "users", "create", "bad name", "--password-stdin", stdin="x-pass-word\n")
    assert bad.returncode != 0 and "username" in bad.stderr
