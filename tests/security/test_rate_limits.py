"""Abuse limits keyed on who is calling, not on what they sent (issue 16.5)."""

from __future__ import annotations

import httpx
import pytest

from tests.security.wsclient import Socket, handshake

TRACKING = {"version": 1, "kind": "experiment"}


@pytest.fixture
def settings_overrides():
    return {"rate_limit_per_minute": 8, "ws_handshakes_per_minute": 4, "max_streams_per_user": 2}


def _client(app, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_rate_limit_keyed_on_the_user_not_the_header(app, owner):
    async with _client(app, "10.0.0.1") as c:
        # The same token under three spellings of the keyword is one caller.
        for keyword in ("token", "Token", "TOKEN", "token", "Token", "TOKEN", "token", "Token"):
            r = await c.get("/api/v1/users", headers={"Authorization": f"{keyword} {owner.token}"})
            assert r.status_code == 200
        r = await c.get("/api/v1/users", headers={"Authorization": f"tOkEn {owner.token}"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


async def test_bogus_credentials_share_their_address_bucket(app, owner):
    async with _client(app, "10.0.0.2") as c:
        codes = [
            (await c.get("/api/v1/users", headers={"Authorization": f"token bogus{i}"})).status_code
            for i in range(10)
        ]
        assert codes[:8] == [401] * 8 and codes[8:] == [429, 429]
    # Another address, and the user's own token, are not affected.
    async with _client(app, "10.0.0.3") as c:
        r = await c.get("/api/v1/users", headers={"Authorization": "token bogus"})
        assert r.status_code == 401
        assert (await c.get("/api/v1/users", headers=owner.headers)).status_code == 200


async def test_websocket_handshakes_limited_per_caller(app, owner):
    r = await _project_with_experiment(app, owner)
    path = f"/ws/v1/alice/p/experiments/{r}/logs"
    bogus = {"Authorization": "token bogus"}
    # Anonymous and bogus handshakes are refused (4401) and counted against the address.
    for _ in range(4):
        first = await handshake(app, path, bogus, client="10.2.0.1")
        assert first["type"] == "websocket.close" and first["code"] == 4401
    first = await handshake(app, path, bogus, client="10.2.0.1")
    assert first["code"] == 4429
    headers = {"Authorization": f"token {owner.token}"}
    codes = []
    for _ in range(5):
        first = await handshake(app, path, headers, client="10.2.0.2")
        codes.append(first.get("code") or first["type"])
    assert codes == ["websocket.accept"] * 4 + [4429], codes


async def test_concurrent_streams_capped_per_user(app, owner, other):
    exp_id = await _project_with_experiment(app, owner, public=True)
    path = f"/ws/v1/alice/p/experiments/{exp_id}/logs"
    alice = {"Authorization": f"token {owner.token}"}
    streams = [Socket(app, path, alice, "10.3.0.1") for _ in range(2)]
    try:
        for s in streams:
            assert (await s.opened())["type"] == "websocket.accept"
        third = await handshake(app, path, alice, client="10.3.0.2")
        assert third["type"] == "websocket.close" and third["code"] == 4429
        # Another user has streams of their own.
        bob = {"Authorization": f"token {other.token}"}
        assert (await handshake(app, path, bob, client="10.3.0.3"))["type"] == "websocket.accept"
        await streams.pop().close()
        assert (await handshake(app, path, alice, client="10.3.0.4"))["type"] == "websocket.accept"
    finally:
        for s in streams:
            await s.close()


async def _project_with_experiment(app, owner, *, public: bool = False) -> int:
    async with _client(app, "10.9.9.9") as c:
        r = await c.post(
            "/api/v1/projects", json={"name": "p", "is_public": public}, headers=owner.headers
        )
        assert r.status_code == 201
        r = await c.post(
            "/api/v1/alice/p/experiments", json={"config": TRACKING}, headers=owner.headers
        )
        return r.json()["id"]
