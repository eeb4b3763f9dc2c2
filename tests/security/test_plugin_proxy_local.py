"""Issue 16.1 (last point) and 16.4 with real processes: a tensorboard and a jupyter-server on the
local runtime, reached only through plx's proxy (HTTP and a terminal's websocket), with the
caller's credentials; the workloads listen on loopback, jupyter's token is on no command line.

plx is served by uvicorn on a random port (websockets need a real server, not ASGITransport)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from app.db import session_scope
from app.models import NotebookJob, TensorboardJob
from app.reconciler.loop import Reconciler
from app.reconciler.plugins import reconcile_plugins
from app.runtimes.local import LocalRuntime, group_members
from app.services import plugins

pytestmark = pytest.mark.slow


@pytest.fixture
async def served(app: Any) -> AsyncIterator[str]:
    """plx on 127.0.0.1:<random>; the app's lifespan is the `app` fixture's."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def plugin_runtime(app: Any, settings: Any, tmp_path: Path) -> AsyncIterator[Any]:
    settings.stop_grace_seconds = 3
    runtime = LocalRuntime(state_dir=tmp_path / "rt", max_parallel=1)
    reconciler = Reconciler(settings, app.state.sessionmaker, runtime, steps=[reconcile_plugins])
    yield reconciler
    for key in await runtime.list_workloads():
        await runtime.stop(key, grace_seconds=1)
    await runtime.aclose()


def _need(kind: str) -> None:
    if plugins.find_executable(kind) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{plugins.EXTRAS[kind][0]} is not installed")
        pytest.skip(f"{plugins.EXTRAS[kind][0]} is not installed")


async def fresh(url: str, **kwargs: Any) -> httpx.Response:
    """A request from a client without cookies (the test's client keeps those plx sets)."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url, **kwargs)


async def _until(probe: Any, timeout: float = 90.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            value = await probe()
            if value:
                return value
        except httpx.TransportError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.3)


async def _start(http: httpx.AsyncClient, reconciler: Any, owner: Any, kind: str) -> Any:
    r = await http.post(
        "/api/v1/projects", json={"name": "foo", "is_public": False}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    r = await http.post(f"/api/v1/alice/foo/{kind}/start", headers=owner.headers)
    assert r.status_code == 201, r.text
    await reconciler.reconcile_once()
    model = NotebookJob if kind == "notebook" else TensorboardJob
    async with session_scope(reconciler.sessionmaker) as session:
        row = (await session.scalars(select(model))).one()
    assert row.last_status == "running", row.last_status
    return row


def _cmdlines(pgid: int, start_ticks: int) -> list[bytes]:
    return [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in group_members(pgid, start_ticks)]


async def test_notebook_only_through_plx_with_credentials(
    app, served, plugin_runtime, owner, other, backend
):
    if backend != "sqlite":
        pytest.skip("process behaviour does not depend on the database")
    _need("notebook")
    async with httpx.AsyncClient(base_url=served, timeout=30) as http:
        row = await _start(http, plugin_runtime, owner, "notebook")
        status = "/notebook/alice/foo/api/status"
        # The workload: on loopback, and its token is needed there (only plx knows it).
        assert row.url.startswith("http://127.0.0.1:")
        upstream = row.url.rstrip("/") + status
        assert (await _until(lambda: http.get(upstream))).status_code == 403

        async def through_plx() -> httpx.Response | None:
            r = await http.get(status, headers=owner.headers)
            return r if r.status_code == 200 else None

        r = await _until(through_plx)
        assert "started" in r.json()
        # No credentials: 401; another user's private project: 404; run tokens are no users.
        r = await fresh(served + status)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "token"
        assert (await fresh(served + status, headers=other.headers)).status_code == 404
        bogus = {"Authorization": "token nope"}
        assert (await fresh(served + status, headers=bogus)).status_code == 401

        # A browser: the API's URL carries a ticket, traded for a cookie on this path.
        nb = (await http.get("/api/v1/alice/foo/notebook", headers=owner.headers)).json()
        assert nb["url"].startswith(f"{served}/notebook/alice/foo/?plx_ticket=")
        assert row.token not in nb["url"]
        r = await http.get("/api/v1/alice/foo/notebook", headers=other.headers)
        assert r.status_code == 404
        async with httpx.AsyncClient(timeout=30) as browser:
            r = await browser.get(nb["url"])
            assert r.status_code == 303 and r.headers["location"] == "/notebook/alice/foo/"
            cookie = r.headers["set-cookie"]
            assert "httponly" in cookie.lower() and "path=/notebook/alice/foo" in cookie.lower()
            r = await browser.get(f"{served}{status}")
            assert r.status_code == 200, r.text
            # The cookie opens this notebook only.
            tb = await browser.get(f"{served}/tensorboard/alice/foo/")
            assert tb.status_code == 401
            # A forged or reused-elsewhere ticket is refused.
            forged = nb["url"][:-3] + ("000" if not nb["url"].endswith("000") else "111")
            assert (await fresh(forged)).status_code == 401

            # Websockets: a terminal, through plx, with the browser's cookie.
            r = await browser.post(f"{served}/notebook/alice/foo/api/terminals", json={})
            assert r.status_code == 200, r.text
            name = r.json()["name"]
            ws_path = f"/notebook/alice/foo/terminals/websocket/{name}"
            ws_url = served.replace("http", "ws") + ws_path
            jar = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
            async with ws_connect(ws_url, additional_headers={"Cookie": jar}) as ws:
                await ws.send(json.dumps(["stdin", "echo plx-$((6*7))\r"]))
                seen = ""
                async with asyncio.timeout(30):
                    while "plx-42" not in seen:
                        message = json.loads(await ws.recv())
                        if message[0] == "stdout":
                            seen += message[1]
        # ...and not without credentials, nor for another user.
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(ws_url):
                pass
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus):
            async with ws_connect(ws_url, additional_headers=other.headers):
                pass

        # Item 16.1: the token is on no command line, only in the environment.
        (state,) = (await plugin_runtime.runtime.list_workloads()).values()
        pid = state.details["pid"]
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        cmdlines = _cmdlines(pid, ticks)
        assert any(b"jupyter" in line for line in cmdlines), cmdlines
        assert not any(row.token.encode() in line for line in cmdlines)
        for member in group_members(pid, ticks):
            if b"jupyter" in Path(f"/proc/{member}/cmdline").read_bytes():
                environ = Path(f"/proc/{member}/environ").read_bytes()
                assert f"JUPYTER_TOKEN={row.token}".encode() in environ


async def test_tensorboard_only_through_plx_with_credentials(
    app, served, plugin_runtime, owner, other, backend
):
    if backend != "sqlite":
        pytest.skip("process behaviour does not depend on the database")
    _need("tensorboard")
    async with httpx.AsyncClient(base_url=served, timeout=30) as http:
        row = await _start(http, plugin_runtime, owner, "tensorboard")
        assert row.url.startswith("http://127.0.0.1:")
        (spec,) = plugin_runtime.runtime._workloads.values()
        assert "--host 127.0.0.1" in spec.info["command"]
        page = "/tensorboard/alice/foo/data/environment"

        async def through_plx() -> httpx.Response | None:
            r = await http.get(page, headers=owner.headers)
            return r if r.status_code == 200 else None

        r = await _until(through_plx)
        assert "data_location" in r.json()
        r = await http.get("/tensorboard/alice/foo/", headers=owner.headers)
        assert r.status_code == 200 and "<html" in r.text.lower()
        assert (await fresh(served + page)).status_code == 401
        assert (await fresh(served + page, headers=other.headers)).status_code == 404
        # Public: anyone who may read the project sees its tensorboard; none of the others.
        r = await http.patch("/api/v1/alice/foo", json={"is_public": True}, headers=owner.headers)
        assert r.status_code == 200, r.text
        assert (await fresh(served + page, headers=other.headers)).status_code == 200
        assert (await fresh(served + page)).status_code == 401
        # A tensorboard of an experiment that has none: 404, not the project's.
        r = await http.get("/tensorboard/alice/foo/experiments/1/", headers=owner.headers)
        assert r.status_code == 404


async def test_tensorboards_and_notebooks_take_no_run_slot(tmp_path):
    """PLX_LOCAL_MAX_PARALLEL counts experiments, jobs and builds only."""
    from app.runtimes.base import RuntimeError_, WorkloadSpec

    runtime = LocalRuntime(state_dir=tmp_path / "rt", max_parallel=1)

    def spec(kind: str, run_id: int) -> WorkloadSpec:
        return WorkloadSpec(
            key=f"{kind}-{run_id}",
            kind=kind,  # type: ignore[arg-type]
            run_id=run_id,
            uuid=f"{run_id:032x}",
            unique_name=f"alice.foo.{run_id}",
            username="alice",
            project="foo",
            command="sleep 30",
            workdir=str(tmp_path / f"w{run_id}"),
        )

    try:
        for kind, run_id in (("tensorboard", 1), ("notebook", 2), ("tensorboard", 3)):
            assert not (await runtime.start(spec(kind, run_id))).done
        assert (await runtime.start(spec("experiment", 4))).status == "running"
        with pytest.raises(RuntimeError_, match="1 of 1 local slots"):
            await runtime.start(spec("job", 5))
    finally:
        for key in await runtime.list_workloads():
            await runtime.stop(key, grace_seconds=1)
        await runtime.aclose()
