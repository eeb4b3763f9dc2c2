"""The resolved-token cache: a change that revokes or alters a principal takes effect at once in
this process; a change made elsewhere (another replica, SQL) within `auth_cache_seconds`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import delete

from app.db import session_scope
from app.models import Token, User
from app.services.principal_cache import PrincipalCache
from app.services.users import Principal

pytestmark = pytest.mark.usefixtures("backend")


def _principal(user_id: int, run: tuple[str, int] | None = None) -> Principal:
    user = User(id=user_id, username=f"u{user_id}", password_hash="x")
    if run is None:
        return Principal(user=user)
    return Principal(user=user, run_kind=run[0], run_id=run[1])


def test_cache_forgets_by_user_and_by_run() -> None:
    cache = PrincipalCache(ttl=60)
    cache.put("a", _principal(1))
    cache.put("b", _principal(2))
    cache.put("c", _principal(2, ("experiment", 7)))
    cache.put("d", _principal(2, ("job", 7)))
    cache.forget(run=("experiment", {7}))
    assert cache.get("c") is None and cache.get("d") is not None
    cache.forget(user_id=2)
    assert cache.get("b") is None and cache.get("d") is None
    assert cache.get("a") is not None


def test_cache_expires_entries_and_stays_bounded() -> None:
    cache = PrincipalCache(ttl=60, max_entries=3)
    for i in range(5):
        cache.put(str(i), _principal(i))
    assert len(cache) == 3 and cache.get("0") is None and cache.get("4") is not None
    expired = PrincipalCache(ttl=0.001)
    expired.put("k", _principal(1))
    time.sleep(0.01)
    assert expired.get("k") is None and len(expired) == 0
    off = PrincipalCache(ttl=0)
    off.put("k", _principal(1))
    assert len(off) == 0


async def test_logout_refuses_the_token_at_once(client: Any, owner: Any) -> None:
    assert (await client.get("/api/v1/users", headers=owner.headers)).status_code == 200
    assert (await client.post("/api/v1/users/logout", headers=owner.headers)).status_code == 200
    r = await client.get("/api/v1/users", headers=owner.headers)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "token"


async def test_revoked_superuser_loses_rights_at_once(
    client: Any, admin: Any, make_user: Any
) -> None:
    second = await make_user("second", superuser=True)
    r = await client.post("/api/v1/users/activate/second", headers=second.headers)
    assert r.status_code == 200, r.text
    r = await client.post("/api/v1/superusers/revoke/second", headers=admin.headers)
    assert r.status_code == 200, r.text
    r = await client.post("/api/v1/users/activate/second", headers=second.headers)
    assert r.status_code == 403, r.text


async def test_deleted_user_is_refused_at_once(client: Any, admin: Any, other: Any) -> None:
    assert (await client.get("/api/v1/users", headers=other.headers)).status_code == 200
    r = await client.delete(f"/api/v1/users/delete/{other.username}", headers=admin.headers)
    assert r.status_code == 204, r.text
    assert (await client.get("/api/v1/users", headers=other.headers)).status_code == 401


async def test_rollback_of_the_request_that_cached_does_not_break_the_cache(
    client: Any, admin: Any
) -> None:
    # The first request resolves the token, then fails and rolls back its session.
    r = await client.delete(f"/api/v1/users/delete/{admin.username}", headers=admin.headers)
    assert r.status_code == 400
    r = await client.get("/api/v1/users", headers=admin.headers)
    assert r.status_code == 200 and r.json()["username"] == admin.username


@pytest.mark.parametrize("settings_overrides", [{"auth_cache_seconds": 0.2}])
async def test_a_token_deleted_elsewhere_stops_working_within_the_ttl(
    app: Any, client: Any, owner: Any
) -> None:
    assert (await client.get("/api/v1/users", headers=owner.headers)).status_code == 200
    # Another replica (or an operator) deletes the token: this process does not hear of it.
    async with session_scope(app.state.sessionmaker) as session:
        await session.execute(delete(Token).where(Token.user_id == owner.id))
    await asyncio.sleep(0.3)
    assert (await client.get("/api/v1/users", headers=owner.headers)).status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"auth_cache_seconds": 0}])
async def test_cache_off_looks_every_token_up(app: Any, client: Any, owner: Any) -> None:
    assert (await client.get("/api/v1/users", headers=owner.headers)).status_code == 200
    async with session_scope(app.state.sessionmaker) as session:
        await session.execute(delete(Token).where(Token.user_id == owner.id))
    assert (await client.get("/api/v1/users", headers=owner.headers)).status_code == 401
