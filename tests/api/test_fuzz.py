"""Property-based fuzz of the app's own OpenAPI schema over ASGI: no request may answer 5xx.

Schemathesis drives the app's lifespan on its own event-loop thread, so this module builds its own
apps on migrated databases (SQLite, and PostgreSQL when PLX_TEST_POSTGRES_URL is set) instead
of using the async `app` fixture. Requests carry a superuser token, so every route gets past
authentication and into its validation and service code.

Examples per operation and backend: PLX_FUZZ_EXAMPLES, else 20 under CI (CI set) and 10 elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope
from app.main import create_app
from app.migrate import upgrade
from app.services.users import create_user, login
from tests.conftest import BACKENDS, POSTGRES_URL, _recreate_database

ADMIN = "root"
PASSWORD = "password123"


async def _seed(settings: Settings) -> str:
    """A superuser, a user with a public and a private project; returns the superuser token."""
    from app.services.projects import create_project
    from app.services.users import Principal

    engine = make_engine(settings)
    try:
        maker = make_sessionmaker(engine)
        async with session_scope(maker) as session:
            await create_user(session, username=ADMIN, password=PASSWORD, is_superuser=True)
            alice = await create_user(session, username="alice", password=PASSWORD)
            for name, public in (("pub", True), ("priv", False)):
                await create_project(
                    session, Principal(user=alice), data={"name": name, "is_public": public}
                )
        async with session_scope(maker) as session:
            return await login(session, username=ADMIN, password=PASSWORD)
    finally:
        await engine.dispose()


# The schema is loaded when the module is imported (schemathesis parametrizes at collection), which
# only reads /openapi.json; the databases are migrated and seeded before the first case runs.
# Both backends: PostgreSQL rejects more inputs at the driver (NUL, int64 overflow), SQLite has
# its own limits (expression depth, variables per statement).
EXAMPLES = int(os.environ.get("PLX_FUZZ_EXAMPLES") or (20 if os.environ.get("CI") else 10))
_ROOT = Path(tempfile.mkdtemp(prefix="plx-fuzz-"))
_PG_NAME = None
_URLS = {"sqlite": f"sqlite+aiosqlite:///{_ROOT / 'plx.db'}"}
if POSTGRES_URL:
    _PG = make_url(POSTGRES_URL)
    _PG_NAME = f"{_PG.database or 'plx_test'}_fuzz_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    _URLS["postgres"] = _PG.set(database=_PG_NAME).render_as_string(hide_password=False)
    _ADMIN_URL = _PG.set(database="postgres").render_as_string(hide_password=False)
SETTINGS = {
    backend: Settings(
        data_dir=_ROOT / backend / "data",
        database_url=url,
        runtime="fake",
        api_url="http://testserver",
        reconciler_enabled=False,
    )
    for backend, url in _URLS.items()
}
APPS = {backend: create_app(config) for backend, config in SETTINGS.items()}
schema = schemathesis.openapi.from_asgi("/openapi.json", APPS["sqlite"])


@pytest.fixture(scope="module")
def backend_headers() -> Iterator[dict[str, dict[str, str]]]:
    if _PG_NAME:
        asyncio.run(_recreate_database(_ADMIN_URL, _PG_NAME))
    headers = {}
    for backend, config in SETTINGS.items():
        upgrade(config)
        token = asyncio.run(_seed(config))
        headers[backend] = {"Authorization": f"token {token}"}
    yield headers
    shutil.rmtree(_ROOT, ignore_errors=True)


# One test per operation, with readable ids (the plugin's own items share one node id under
# pytest 9, which pytest-xdist cannot schedule).
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_server_errors(operation, backend, backend_headers):
    if backend not in APPS:
        pytest.skip("PLX_TEST_POSTGRES_URL is not set")
    app, auth_headers = APPS[backend], backend_headers[backend]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call(headers=auth_headers, app=app)
        assert response.status_code < 500, (
            case.method,
            case.formatted_path,
            response.status_code,
            response.text[:500],
        )

    check()


# Inputs that once reached the database driver and answered 500 (found by fuzzing on Postgres).
@pytest.mark.parametrize(
    "path, status, word",
    [
        ("/api/v1/alice?offset=99999999999999999999", 400, "offset"),
        ("/api/v1/alice?offset=9223372036854775808", 400, "offset"),
        ("/api/v1/alice?query=id:99999999999999999999", 400, "out of range"),
        ("/api/v1/alice?query=id:abc", 400, "expects an integer"),
        ("/api/v1/alice?query=id:1|2e9999", 400, "expects an integer"),
        ("/api/v1/alice?query=name:%00", 400, "NUL"),
        ("/api/v1/alice?query=tags:a%00b", 400, "NUL"),
        ("/api/v1/al%00ice", 404, "Not found."),
        ("/api/v1/alice/pr%00oj", 404, "Not found."),
    ],
)
async def test_hostile_list_and_path_inputs_answer_4xx(client, owner, path, status, word):
    r = await client.post("/api/v1/projects", json={"name": "proj"}, headers=owner.headers)
    assert r.status_code == 201
    r = await client.get(path, headers=owner.headers)
    assert r.status_code == status, r.text
    assert word in r.json()["detail"]


async def test_integer_query_field_still_filters(client, owner):
    ids = []
    for name in ("a1", "a2"):
        r = await client.post("/api/v1/projects", json={"name": name}, headers=owner.headers)
        ids.append(r.json()["id"])
    r = await client.get(f"/api/v1/alice?query=id:{ids[0]}", headers=owner.headers)
    assert [p["name"] for p in r.json()["results"]] == ["a1"]
    r = await client.get(f"/api/v1/alice?query=id:~{ids[0]}", headers=owner.headers)
    assert [p["name"] for p in r.json()["results"]] == ["a2"]
