"""Shared fixtures: a migrated database (SQLite, and Postgres when PLX_TEST_POSTGRES_URL is set),
the app over ASGI, and users with tokens.

Every database test runs once per backend through the parametrised `backend` fixture.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.main import create_app
from app.migrate import upgrade
from app.models import Base

POSTGRES_URL = os.environ.get("PLX_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgres"]


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def local_runs_env(data_dir: Path) -> dict[str, str]:
    """PLX_* for a `plx server` whose local runs execute as another OS user when it is root
    (app/runtimes/isolation.py): that user must pass through pytest's private temporary
    directories to reach the data directory, and execute this interpreter. Where it cannot
    (an interpreter under root's private home, as pyenv installs it), the server runs them as
    itself, for trusted users."""
    if os.geteuid() != 0:
        return {}
    for path in reversed(data_dir.parents):
        if path.is_dir() and path.stat().st_uid == 0 and str(path).startswith("/tmp/"):
            path.chmod(path.stat().st_mode | 0o111)
    if not _others_can_reach(Path(sys.executable).resolve()):
        return {"PLX_LOCAL_RUN_USER": "none", "PLX_LOCAL_TRUST_USERS": "true"}
    return {}


def _others_can_reach(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in path.parents)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating every time)."""
    path = tmp_path_factory.mktemp("template") / "plx.db"
    upgrade(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_database() -> str:
    """A per-worker Postgres database, migrated once; tests truncate it."""
    if not POSTGRES_URL:
        pytest.skip("PLX_TEST_POSTGRES_URL is not set")
    base = make_url(POSTGRES_URL)
    name = f"{base.database or 'plx_test'}_{_worker()}"
    admin_url = base.set(database="postgres").render_as_string(hide_password=False)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _recreate_database(admin_url, name)).result()
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(Settings(database_url=url))
    return url


async def _recreate_database(admin_url: str, name: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


async def _truncate(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "plx.db"
        shutil.copy(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    await _truncate(url)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        runtime="fake",
        api_url="http://testserver",
        reconciler_enabled=False,
    )


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings of the `app` fixture."""
    return {}


@pytest.fixture
async def app(settings: Settings, settings_overrides: dict[str, Any]) -> AsyncIterator[Any]:
    for key, value in settings_overrides.items():
        setattr(settings, key, value)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class TestUser:
    __test__ = False
    username: str
    token: str
    id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


@pytest.fixture
def make_user(app: Any) -> Callable[..., Any]:
    from app.db import session_scope
    from app.services.users import create_user, login

    async def _make(username: str, *, superuser: bool = False) -> TestUser:
        async with session_scope(app.state.sessionmaker) as session:
            user = await create_user(
                session, username=username, password="password123", is_superuser=superuser
            )
            user_id = user.id
        async with session_scope(app.state.sessionmaker) as session:
            token = await login(session, username=username, password="password123")
        return TestUser(username=username, token=token, id=user_id)

    return _make


@pytest.fixture
async def owner(make_user: Callable[..., Any]) -> TestUser:
    return await make_user("alice")


@pytest.fixture
async def other(make_user: Callable[..., Any]) -> TestUser:
    return await make_user("bob")


@pytest.fixture
async def admin(make_user: Callable[..., Any]) -> TestUser:
    return await make_user("root", superuser=True)
