"""A real `plx server` (subprocess, free port, fresh data dir) on SQLite, and on Postgres when
PLX_TEST_POSTGRES_URL is set: the client is tested against plx itself, never a mock.

Needs plx installed in the same environment (the repository's `.venv`)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from plx_client import Client

PG_ENV = "PLX_TEST_POSTGRES_URL"

pytest.importorskip("app.cli", reason="plx itself (the server) is not installed here")

# The server fixture is the end-to-end tests' (tests/e2e/servers.py of the plx repository).
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
servers = pytest.importorskip("tests.e2e.servers", reason="not in a plx source checkout")
ADMIN = servers.ADMIN
free_port = servers.free_port


class Server(servers.Server):
    def client(self) -> Client:
        return Client(self.url, self.token, username=ADMIN[0])


async def _pg_admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _new_database() -> tuple[str, str]:
    """A fresh Postgres database: (its URL, the admin URL that drops it)."""
    base = os.environ[PG_ENV]
    name = f"plx_client_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    server_url = base.rsplit("/", 1)[0]
    admin = f"{server_url}/postgres"  # the URL's own database need not exist
    asyncio.run(_pg_admin(admin, f'CREATE DATABASE "{name}"'))
    return f"{server_url}/{name}", admin


def _drop_database(url: str, admin: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"], scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} is not set")
    return request.param


@pytest.fixture(scope="module")
def module_database(backend: str) -> Iterator[str | None]:
    """None (SQLite in the data dir) or the URL of a fresh Postgres database."""
    if backend == "sqlite":
        yield None
        return
    url, admin = _new_database()
    yield url
    _drop_database(url, admin)


def make_server(data: Path, database: str | None, **overrides: Any) -> Server:
    port = free_port()
    env = servers.server_env(data)
    env["PLX_API_URL"] = f"http://127.0.0.1:{port}"
    # These tests are about the client, not run isolation: the runs stay the server's user
    # (as root, plx would otherwise need a run user that can reach this interpreter).
    env.update(PLX_LOCAL_RUN_USER="none", PLX_LOCAL_TRUST_USERS="true")
    for key in ("PLX_DATABASE_URL", "PLX_TOKEN", "PLX_EXPERIMENT_ID", "PLX_CONFIG"):
        env.pop(key, None)
    if database:
        env["PLX_DATABASE_URL"] = database
    env.update(servers.plx_overrides(overrides))
    return Server(data_dir=data, port=port, env=env)


@pytest.fixture(scope="module")
def server(
    module_database: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per module and backend (tests use their own projects)."""
    srv = make_server(tmp_path_factory.mktemp("plx"), module_database).start()
    yield srv
    srv.stop()


@pytest.fixture
def new_server(backend: str, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory for a server of the test's own (it may kill and restart it), on a database of
    its own: two servers with local runtimes must never share one (each would judge the other's
    runs vanished)."""
    started: list[Server] = []
    databases: list[tuple[str, str]] = []

    def _make(**overrides: Any) -> Server:
        database = None
        if backend == "postgres":
            databases.append(_new_database())
            database = databases[-1][0]
        srv = make_server(tmp_path / f"plx{len(started)}", database, **overrides)
        started.append(srv)
        return srv.start()

    yield _make
    for srv in started:
        srv.stop()
    for url, admin in databases:
        _drop_database(url, admin)


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's ~/.plx, nor a run's PLX_* of the caller."""
    monkeypatch.setenv("PLX_CONFIG", str(tmp_path / "client.json"))
    for key in ("PLX_API_URL", "PLX_TOKEN", "PLX_USERNAME", "PLX_PROJECT", "PLX_EXPERIMENT_ID"):
        monkeypatch.delenv(key, raising=False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(interval)
