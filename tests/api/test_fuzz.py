"""Property-based fuzz of the app's own OpenAPI schema over ASGI: no request may answer 5xx.

Schemathesis drives the app's lifespan on its own event-loop thread, so this module builds its own
app on a migrated SQLite file instead of using the async `app` fixture. Requests carry a superuser
token, so every route gets past authentication and into its validation and service code.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope
from app.main import create_app
from app.migrate import upgrade
from app.services.users import create_user, login

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
# only reads /openapi.json; the database is migrated and seeded before the first case runs.
_ROOT = Path(tempfile.mkdtemp(prefix="plx-fuzz-"))
SETTINGS = Settings(
    data_dir=_ROOT / "data",
    database_url=f"sqlite+aiosqlite:///{_ROOT / 'plx.db'}",
    runtime="fake",
    api_url="http://testserver",
    reconciler_enabled=False,
)
APP = create_app(SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def auth_headers() -> Iterator[dict[str, str]]:
    upgrade(SETTINGS)
    token = asyncio.run(_seed(SETTINGS))
    yield {"Authorization": f"token {token}"}
    shutil.rmtree(_ROOT, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case, auth_headers):
    response = case.call(headers=auth_headers)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
