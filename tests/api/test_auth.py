"""Authentication and permissions: each kind of caller against every project route; users API."""

from __future__ import annotations

import pytest

# (method, path template, body): `{p}` is the project name; delete runs last.
ROUTES = [
    ("list", "GET", "/api/v1/alice", None),
    ("get", "GET", "/api/v1/alice/{p}", None),
    ("put", "PUT", "/api/v1/alice/{p}", {"description": "put"}),
    ("patch", "PATCH", "/api/v1/alice/{p}", {"description": "patched"}),
    ("bookmark", "POST", "/api/v1/alice/{p}/bookmark", None),
    ("unbookmark", "DELETE", "/api/v1/alice/{p}/unbookmark", None),
    ("delete", "DELETE", "/api/v1/alice/{p}", None),
]
ALLOWED = {
    "list": 200, "get": 200, "put": 200, "patch": 200, "bookmark": 201, "unbookmark": 204,
    "delete": 204,
}
# Another user: reads and bookmarks public projects, never sees private ones.
OTHER_PUBLIC = {**ALLOWED, "put": 403, "patch": 403, "delete": 403}
OTHER_PRIVATE = {**dict.fromkeys(ALLOWED, 404), "list": 200}
UNAUTHENTICATED = ["anonymous", "bad_token", "token_alone", "token_with_spaces", "bearer"]


async def _seed(client, owner):
    for name, public in (("pub", True), ("priv", False)):
        r = await client.post(
            "/api/v1/projects",
            json={"name": name, "is_public": public, "description": "orig"},
            headers=owner.headers,
        )
        assert r.status_code == 201, r.text


def _headers(kind, owner):
    return {
        "anonymous": {},
        "bad_token": {"Authorization": "token " + "0" * 40},
        "token_alone": {"Authorization": "token"},
        "token_with_spaces": {"Authorization": f"token {owner.token} extra"},
        "bearer": {"Authorization": f"Bearer {owner.token}"},
    }[kind]


async def _run_matrix(client, headers, expected_by_project):
    mismatches = []
    for project, expected in expected_by_project.items():
        for name, method, template, body in ROUTES:
            r = await client.request(
                method, template.format(p=project), json=body, headers=headers
            )
            if r.status_code != expected[name]:
                mismatches.append((project, name, expected[name], r.status_code, r.text[:120]))
    return mismatches


@pytest.mark.parametrize("kind", UNAUTHENTICATED)
async def test_unauthenticated_callers_get_401_everywhere(client, owner, kind):
    await _seed(client, owner)
    headers = _headers(kind, owner)
    for _name, method, template, body in ROUTES:
        for project in ("pub", "priv"):
            r = await client.request(
                method, template.format(p=project), json=body, headers=headers
            )
            assert r.status_code == 401, (kind, method, template, r.text)
            assert r.headers["www-authenticate"] == "token"
            assert r.json()["detail"]
    r = await client.post("/api/v1/projects", json={"name": "new"}, headers=headers)
    assert r.status_code == 401
    # Nothing changed.
    r = await client.get("/api/v1/alice", headers=owner.headers)
    assert r.json()["count"] == 2
    assert {p["description"] for p in r.json()["results"]} == {"orig"}


async def test_token_keyword_is_case_insensitive(client, owner):
    r = await client.get("/api/v1/users", headers={"Authorization": f"TOKEN {owner.token}"})
    assert r.status_code == 200 and r.json()["username"] == "alice"


async def test_other_user_reads_public_but_cannot_write_or_see_private(client, owner, other):
    await _seed(client, owner)
    mismatches = await _run_matrix(
        client, other.headers, {"pub": OTHER_PUBLIC, "priv": OTHER_PRIVATE}
    )
    assert mismatches == []
    r = await client.get("/api/v1/alice", headers=other.headers)
    assert [p["name"] for p in r.json()["results"]] == ["pub"] and r.json()["count"] == 1
    # The owner's projects are untouched: no rejected write went through.
    r = await client.get("/api/v1/alice", headers=owner.headers)
    assert r.json()["count"] == 2
    assert {p["description"] for p in r.json()["results"]} == {"orig"}


@pytest.mark.parametrize("who", ["owner", "admin"])
async def test_owner_and_superuser_may_do_everything(client, owner, admin, who):
    await _seed(client, owner)
    caller = owner if who == "owner" else admin
    r = await client.get("/api/v1/alice", headers=caller.headers)
    assert r.json()["count"] == 2
    mismatches = await _run_matrix(client, caller.headers, {"pub": ALLOWED, "priv": ALLOWED})
    assert mismatches == []
    r = await client.get("/api/v1/alice", headers=owner.headers)
    assert r.json()["count"] == 0


async def test_writes_land_for_owner(client, owner):
    await _seed(client, owner)
    r = await client.patch("/api/v1/alice/priv", json={"description": "x"}, headers=owner.headers)
    assert r.json()["description"] == "x"
    r = await client.get("/api/v1/alice/priv", headers=owner.headers)
    assert r.json()["description"] == "x" and r.json()["is_public"] is False


async def test_create_user_superuser_only(client, owner, admin):
    body = {"username": "carol", "password": "secret-pass", "email": "c@example.com"}
    r = await client.post("/api/v1/users", json=body, headers=owner.headers)
    assert r.status_code == 403
    r = await client.post("/api/v1/users", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "token"
    r = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    assert r.json()["username"] == "carol" and r.json()["is_superuser"] is False
    r = await client.post("/api/v1/users/token", json={"username": "carol",
                                                       "password": "secret-pass"})
    assert r.status_code == 200
    r = await client.get("/api/v1/users", headers={"Authorization": f"token {r.json()['token']}"})
    assert r.json()["username"] == "carol"
    # The 403 did not create anything, and a duplicate is a 400.
    r = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert r.status_code == 400


async def test_login_json_and_form(client, owner):
    # Each login issues a new token (contract.md 4); all of them work.
    tokens = {owner.token}
    for body in ({"json": {"username": "alice", "password": "password123"}},
                 {"data": {"username": "alice", "password": "password123"}}):
        r = await client.post("/api/v1/users/token", **body)
        assert r.status_code == 200 and set(r.json()) == {"token"}
        assert r.json()["token"] not in tokens
        tokens.add(r.json()["token"])
    for token in tokens:
        r = await client.get("/api/v1/users", headers={"Authorization": f"token {token}"})
        assert r.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": "password123"},
    ],
)
async def test_bad_credentials_400(client, owner, body):
    r = await client.post("/api/v1/users/token", json=body)
    assert r.status_code == 400 and r.json()["detail"]


@pytest.mark.parametrize("content", [b"{", b"[]", b'{"username": "alice"}'])
async def test_malformed_login_body_400(client, owner, content):
    r = await client.post("/api/v1/users/token", content=content,
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"]


async def test_logout_revokes_token(client, owner):
    r = await client.post("/api/v1/users/logout", headers=owner.headers)
    assert r.status_code == 200
    r = await client.get("/api/v1/users", headers=owner.headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "token"
    r = await client.post("/api/v1/users/token",
                          json={"username": "alice", "password": "password123"})
    assert r.status_code == 200 and r.json()["token"] != owner.token
    r = await client.get("/api/v1/users", headers={"Authorization": f"token {r.json()['token']}"})
    assert r.status_code == 200


async def test_get_users_returns_caller(client, owner, admin):
    r = await client.get("/api/v1/users/", headers=owner.headers)
    assert r.status_code == 200
    assert r.json()["username"] == "alice" and r.json()["is_superuser"] is False
    r = await client.get("/api/v1/users", headers=admin.headers)
    assert r.json()["username"] == "root" and r.json()["is_superuser"] is True
    r = await client.get("/api/v1/users")
    assert r.status_code == 401
