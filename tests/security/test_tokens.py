"""API tokens: stored only as digests, one per login, revoked by logout (that one) and by a
password change or reset (all), optionally expiring; existing clear tokens migrate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings
from app.db import session_scope
from app.main import create_app
from app.migrate import alembic_config, upgrade
from app.services.users import create_run_tokens, ensure_admin, get_user

ME = "/api/v1/users"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


async def _login(client: Any, username: str, password: str = "password123") -> str:
    r = await client.post(f"{ME}/token", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["token"]


async def _stored_values(app: Any) -> list[str]:
    async with session_scope(app.state.sessionmaker) as session:
        rows = (await session.execute(text("SELECT * FROM tokens"))).all()
    return [str(value) for row in rows for value in row]


async def test_tokens_are_stored_only_as_digests(app: Any, client: Any, owner: Any) -> None:
    second = await _login(client, "alice")
    # Run tokens of real runs: a token of a run that does not exist (or is done) is revoked.
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    assert r.status_code == 201
    tracking = {"config": {"version": 1, "kind": "experiment"}}
    runs = []
    for _ in range(2):
        r = await client.post("/api/v1/alice/p/experiments", json=tracking, headers=owner.headers)
        runs.append(r.json()["id"])
    async with session_scope(app.state.sessionmaker) as session:
        user = await get_user(session, "alice")
        assert user is not None
        run_tokens = await create_run_tokens(
            session, [(user, "experiment", runs[0]), (user, "experiment", runs[1])]
        )
    stored = await _stored_values(app)
    for token in [owner.token, second, *run_tokens.values()]:
        # Neither the token nor any part of it long enough to narrow a search is stored.
        assert not any(token[:8] in value for value in stored), token
        assert (await client.get(ME, headers=_auth(token))).status_code in (200, 403)


async def test_each_login_issues_a_token_and_logout_revokes_only_that_one(
    client: Any, owner: Any
) -> None:
    laptop, desktop = await _login(client, "alice"), await _login(client, "alice")
    assert len({owner.token, laptop, desktop}) == 3
    r = await client.post(f"{ME}/logout", headers=_auth(laptop))
    assert r.status_code == 200
    assert (await client.get(ME, headers=_auth(laptop))).status_code == 401
    for token in (owner.token, desktop):
        assert (await client.get(ME, headers=_auth(token))).status_code == 200


async def test_a_password_change_revokes_every_token_of_the_user(
    client: Any, owner: Any, other: Any
) -> None:
    second = await _login(client, "alice")
    body = {"old_password": "wrong-password", "new_password": "new-password-1"}
    r = await client.post(f"{ME}/password", json=body, headers=owner.headers)
    assert r.status_code == 400 and "old_password" in r.json()["detail"]
    assert (await client.get(ME, headers=owner.headers)).status_code == 200  # nothing changed
    body["old_password"] = "password123"
    r = await client.post(f"{ME}/password", json=body, headers=owner.headers)
    assert r.status_code == 200, r.text
    fresh = r.json()["token"]
    for token in (owner.token, second):
        assert (await client.get(ME, headers=_auth(token))).status_code == 401
    assert (await client.get(ME, headers=_auth(fresh))).status_code == 200
    assert (await client.get(ME, headers=other.headers)).status_code == 200
    r = await client.post(f"{ME}/token", json={"username": "alice", "password": "password123"})
    assert r.status_code == 400
    await _login(client, "alice", "new-password-1")


async def test_an_admin_password_reset_at_start_revokes_its_tokens(app: Any, client: Any) -> None:
    async with session_scope(app.state.sessionmaker) as session:
        await ensure_admin(session, username="boss", password="first-password")
    token = await _login(client, "boss", "first-password")
    async with session_scope(app.state.sessionmaker) as session:  # same password: kept
        await ensure_admin(session, username="boss", password="first-password")
    assert (await client.get(ME, headers=_auth(token))).status_code == 200
    async with session_scope(app.state.sessionmaker) as session:
        await ensure_admin(session, username="boss", password="second-password")
    assert (await client.get(ME, headers=_auth(token))).status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"token_ttl": 1.0}])
async def test_tokens_expire_after_the_ttl(client: Any, owner: Any) -> None:
    token = await _login(client, "alice")
    assert (await client.get(ME, headers=_auth(token))).status_code == 200  # now cached
    await asyncio.sleep(1.1)
    r = await client.get(ME, headers=_auth(token))
    assert r.status_code == 401 and r.json()["detail"] == "Token has expired."


async def test_an_overlong_token_is_refused_without_a_lookup(client: Any) -> None:
    r = await client.get(ME, headers=_auth("a" * 10_000))
    assert r.status_code == 401


# -- migration 0005 ---------------------------------------------------------------------------


@pytest.fixture
async def old_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database at the revision before tokens were hashed."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    else:
        from tests.conftest import _recreate_database

        base = make_url(request.getfixturevalue("postgres_database"))
        name = f"{base.database}_mig"
        admin = base.set(database="postgres").render_as_string(hide_password=False)
        await _recreate_database(admin, name)
        url = base.set(database=name).render_as_string(hide_password=False)
    script = ScriptDirectory.from_config(alembic_config(url))
    before = script.get_revision("0005_tokens_hashed").down_revision
    await asyncio.to_thread(upgrade, Settings(database_url=url), before)
    return url


async def test_migration_hashes_existing_clear_tokens_which_keep_working(
    old_database: str, tmp_path: Path
) -> None:
    clear = "0123456789abcdef0123456789abcdef01234567"
    engine = create_async_engine(old_database)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (username, password_hash, is_superuser, is_active, created_at)"
                " VALUES ('old', 'x', false, true, CURRENT_TIMESTAMP)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO tokens (selector, key, user_id, created_at)"
                " VALUES (:selector, :key, 1, CURRENT_TIMESTAMP)"
            ),
            {"selector": clear[:12], "key": clear},
        )
    await engine.dispose()
    settings = Settings(
        data_dir=tmp_path / "data", database_url=old_database, runtime="fake",
        reconciler_enabled=False,
    )
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert not any(clear[:8] in value for value in await _stored_values(app))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get(ME, headers=_auth(clear))
            assert r.status_code == 200 and r.json()["username"] == "old"
