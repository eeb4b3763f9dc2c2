"""Tensorboard and notebook as real processes on the local runtime (the extras are installed)."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
from sqlalchemy import select

from app.db import session_scope
from app.models import NotebookJob, TensorboardJob
from app.reconciler.loop import Reconciler
from app.reconciler.plugins import reconcile_plugins
from app.runtimes.local import LocalRuntime
from app.services import plugins

BASE = "/api/v1/alice/foo"

pytestmark = pytest.mark.slow


async def _serving(url: str, timeout: float = 90.0) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            try:
                return (await http.get(url, follow_redirects=True, timeout=5)).status_code
            except httpx.TransportError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)


async def _run(app, client, owner, settings, tmp_path, kind: str, *, end: str = "stop") -> None:
    if plugins.find_executable(kind) is None:
        if os.environ.get("CI"):  # the test extra installs both: under CI a skip would hide it
            pytest.fail(f"{plugins.EXTRAS[kind][0]} is not installed")
        pytest.skip(f"{plugins.EXTRAS[kind][0]} is not installed")
    r = await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    settings.stop_grace_seconds = 5
    runtime = LocalRuntime(state_dir=tmp_path / "rt", max_parallel=4)
    reconciler = Reconciler(settings, app.state.sessionmaker, runtime, steps=[reconcile_plugins])
    try:
        r = await client.post(f"{BASE}/{kind}/start", json=None, headers=owner.headers)
        assert r.status_code == 201, r.text
        await reconciler.reconcile_once()
        if kind == "tensorboard":
            row = (await client.get(f"{BASE}/tensorboards", headers=owner.headers)).json()
            row = row["results"][0]
        else:
            row = (await client.get(f"{BASE}/notebook", headers=owner.headers)).json()
        assert row["last_status"] == "running", row
        # Served through plx's proxy (row["url"]); the workload's own address stays inside.
        async with session_scope(app.state.sessionmaker) as session:
            model = TensorboardJob if kind == "tensorboard" else NotebookJob
            internal = (await session.scalars(select(model.url))).one().rstrip("/")
        internal += f"/{kind}/alice/foo/"  # served under the proxy's path
        assert row["url"].startswith(f"http://testserver/{kind}/alice/foo/?plx_ticket=")
        assert await _serving(internal) in (200, 403)  # jupyter wants the token plx holds
        proxied = await client.get(f"/{kind}/alice/foo/", headers=owner.headers)
        assert proxied.status_code in (200, 302), proxied.text
        (workload,) = (await runtime.list_workloads()).values()
        pid = workload.details.get("pid")

        if end == "stop":
            r = await client.post(
                f"{BASE}/{kind}/stop", json={"commit": False}, headers=owner.headers
            )
            assert r.status_code == 200
        else:
            assert (await client.delete(BASE, headers=owner.headers)).status_code == 204
        await reconciler.reconcile_once()
        assert await runtime.list_workloads() == {}
        if pid:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        with pytest.raises(httpx.TransportError):
            await _serving(internal, timeout=0)
    finally:
        for key in await runtime.list_workloads():
            await runtime.stop(key, grace_seconds=1)
        await runtime.aclose()


async def test_tensorboard_serves_http_until_stopped(
    app, client, owner, settings, tmp_path, backend
):
    if backend != "sqlite":
        pytest.skip("process behaviour does not depend on the database")
    await _run(app, client, owner, settings, tmp_path, "tensorboard")


async def test_notebook_serves_http_until_stopped(app, client, owner, settings, tmp_path, backend):
    if backend != "sqlite":
        pytest.skip("process behaviour does not depend on the database")
    await _run(app, client, owner, settings, tmp_path, "notebook")


async def test_deleting_the_project_kills_its_tensorboard(
    app, client, owner, settings, tmp_path, backend
):
    if backend != "sqlite":
        pytest.skip("process behaviour does not depend on the database")
    await _run(app, client, owner, settings, tmp_path, "tensorboard", end="delete")
