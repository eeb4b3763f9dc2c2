"""Local runs cannot read the server's state or each other's: they execute as an unprivileged
OS user with a uid per plx user (when the server is root); otherwise the server is for one
trusted user and says so."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.db import session_scope
from app.main import create_app
from app.reconciler.loop import Reconciler, build_runtime
from app.reconciler.runs import RUN_STEPS
from app.runtimes import isolation
from app.services.users import create_user, login

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


@pytest.fixture
def data_dir() -> Any:
    """A data directory other users can reach (pytest's tmp dirs are private to root)."""
    base = Path(tempfile.mkdtemp(prefix="plx-iso-", dir="/tmp"))
    base.chmod(0o711)
    yield base / "data"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def local_app(
    backend: str, database_url: str, data_dir: Path
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    if backend == "sqlite":  # the embedded database lives in the data directory, as by default
        data_dir.mkdir(parents=True)
        shutil.copy(database_url.split("///", 1)[1], data_dir / "plx.db")
        database_url = f"sqlite+aiosqlite:///{data_dir / 'plx.db'}"
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        runtime="local",
        api_url="http://testserver",
        reconciler_enabled=False,
        local_run_user="plx-run",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


async def _user(app: Any, name: str) -> dict[str, str]:
    async with session_scope(app.state.sessionmaker) as session:
        await create_user(session, username=name, password="password123")
    async with session_scope(app.state.sessionmaker) as session:
        token = await login(session, username=name, password="password123")
    return {"Authorization": f"token {token}"}


async def _job(client: httpx.AsyncClient, headers: dict[str, str], user: str, cmd: str) -> str:
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=headers)
    assert r.status_code == 201, r.text
    config = {"version": 1, "kind": "experiment", "run": {"cmd": cmd}}
    r = await client.post(f"/api/v1/{user}/p/experiments", json={"config": config}, headers=headers)
    assert r.status_code == 201, r.text
    return f"/api/v1/{user}/p/experiments/{r.json()['id']}"


async def _until_done(rec: Reconciler, client: Any, url: str, headers: Any) -> dict[str, Any]:
    for _ in range(400):
        await rec.reconcile_once()
        body = (await client.get(url, headers=headers)).json()
        if body["last_status"] in ("succeeded", "failed", "stopped"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} did not end: {body}")


@root_only
async def test_a_run_cannot_read_the_database_the_server_state_or_another_users_run(
    backend: str, local_app: tuple[Any, httpx.AsyncClient], data_dir: Path
) -> None:
    app, client = local_app
    alice, bob = await _user(app, "alice"), await _user(app, "bob")
    rec = Reconciler(app.state.settings, app.state.sessionmaker, build_runtime(app.state.settings))
    for step in RUN_STEPS:
        rec.register_step(step)
    try:
        url_a = await _job(client, alice, "alice", 'echo private > "$PLX_OUTPUTS_PATH/a.txt"')
        assert (await _until_done(rec, client, url_a, alice))["last_status"] == "succeeded"
        run_a = data_dir / "runs" / "experiment" / url_a.rsplit("/", 1)[1]
        files = [data_dir / "plx.db", run_a / "outputs" / "a.txt", run_a / "logs" / "log.txt"]
        dirs = [run_a, run_a / "outputs", data_dir / "runtime", data_dir / "repos", data_dir]
        script = " ".join(
            [f'if cat "{f}" >/dev/null 2>&1; then echo "LEAK {f}"; exit 3; fi;' for f in files]
            + [f'if ls "{d}" >/dev/null 2>&1; then echo "LEAK {d}"; exit 3; fi;' for d in dirs]
            + ['echo mine > "$PLX_OUTPUTS_PATH/b.txt" && test "$(id -u)" != 0']
        )
        url_b = await _job(client, bob, "bob", script)
        body = await _until_done(rec, client, url_b, bob)
        log = (await client.get(f"{url_b}/logs", headers=bob)).text
        assert body["last_status"] == "succeeded", log
    finally:
        await rec.runtime.aclose()
    run_b = data_dir / "runs" / "experiment" / url_b.rsplit("/", 1)[1]
    uid_a = (run_a / "outputs" / "a.txt").stat().st_uid
    uid_b = (run_b / "outputs" / "b.txt").stat().st_uid
    assert 0 not in (uid_a, uid_b) and uid_a != uid_b  # one uid per plx user, never root
    assert stat.S_IMODE(run_a.stat().st_mode) == 0o700
    if backend == "sqlite":
        assert stat.S_IMODE((data_dir / "plx.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "runtime").stat().st_mode) == 0o700
    cluster = (await client.get("/api/v1/cluster", headers=alice)).json()
    assert cluster["runs_isolated"] is True


# -- runs as the server's own user --------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"runtime": "local", "local_run_user": "none"}])
async def test_a_server_whose_runs_share_its_user_refuses_a_second_user(
    client: Any, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = (await client.get("/api/v1/cluster", headers=admin.headers)).json()
    assert cluster["runs_isolated"] is False and cluster["single_trusted_user"] is True
    body = {"username": "carol", "password": "password123"}
    assert (await client.post("/api/v1/users", json=body, headers=admin.headers)).status_code == 201
    body = {"username": "dave", "password": "password123"}
    r = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert r.status_code == 403 and "PLX_LOCAL_TRUST_USERS" in r.json()["detail"]
    body = {"username": "eve", "password": "password123", "is_superuser": True}
    assert (await client.post("/api/v1/users", json=body, headers=admin.headers)).status_code == 201


@pytest.mark.parametrize(
    "settings_overrides",
    [{"runtime": "local", "local_run_user": "none", "local_trust_users": True}],
)
async def test_trusted_users_may_share_such_a_server(client: Any, admin: Any) -> None:
    for name in ("carol", "dave"):
        body = {"username": name, "password": "password123"}
        r = await client.post("/api/v1/users", json=body, headers=admin.headers)
        assert r.status_code == 201


def test_start_up_warns_when_runs_share_the_server_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path / "d", runtime="local", local_run_user="none")
    with caplog.at_level("WARNING"):
        assert isolation.prepare_server_state(settings) is None
    assert "one trusted user" in caplog.text
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700


def test_a_run_user_without_root_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(isolation.RunUserError, match="needs a server running as root"):
        isolation.run_user_name("someone")
    assert isolation.run_user_name("") is None  # not root, nothing asked: one trusted user


@root_only
def test_root_as_run_user_is_refused() -> None:
    with pytest.raises(isolation.RunUserError, match="root"):
        isolation.ensure_run_user("root")


@root_only
def test_start_up_closes_run_directories_made_before_runs_were_separated(data_dir: Path) -> None:
    old_run = data_dir / "runs" / "experiment" / "1"
    old_run.mkdir(parents=True, mode=0o755)
    old_run.chmod(0o755)
    (data_dir / "plx.db").write_text("")
    (data_dir / "plx.db").chmod(0o644)
    settings = Settings(data_dir=data_dir, runtime="local", local_run_user="plx-run")
    assert isolation.prepare_server_state(settings) is not None
    assert stat.S_IMODE(old_run.stat().st_mode) == 0o700
    assert stat.S_IMODE(old_run.parent.stat().st_mode) == 0o711
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o711
    assert stat.S_IMODE((data_dir / "plx.db").stat().st_mode) == 0o600
