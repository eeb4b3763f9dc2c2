"""Issue 16.4, fast: the proxy's rules against a stub workload (an echo server), on both
databases. The real tensorboard and jupyter-server are in test_plugin_proxy_local.py (slow)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from app.db import session_scope
from app.logic import plugin_access
from app.models import NotebookJob, TensorboardJob
from app.reconciler.loop import Reconciler
from app.reconciler.plugins import reconcile_plugins
from app.runtimes.fake import FakeRuntime
from app.services.users import create_run_token, get_user

BASE = "/api/v1/alice/foo"


async def _echo(request: Request) -> Any:
    if request.url.path.endswith("/go-home"):
        return RedirectResponse(f"http://{request.headers['host']}/somewhere/", status_code=302)
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.scope["raw_path"].decode(),
            "query": request.url.query,
            "headers": dict(request.headers.items()),
            "body": len(body),
        },
        headers={"set-cookie": "workload=1; Path=/"},
    )


async def _ws_echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="v1.kernel.websocket.jupyter.org")
    await websocket.send_text(json.dumps({"authorization": websocket.headers.get("authorization"),
                                          "cookie": websocket.headers.get("cookie")}))
    async for message in websocket.iter_text():
        await websocket.send_text(message.upper())


STUB = Starlette(
    routes=[
        Route("/{path:path}", _echo, methods=["GET", "POST", "PUT", "DELETE"]),
        WebSocketRoute("/{path:path}", _ws_echo),
    ]
)


async def _serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task, str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


@pytest.fixture
async def stub() -> AsyncIterator[str]:
    server, task, url = await _serve(STUB)
    yield url
    server.should_exit = True
    await task


@pytest.fixture
async def plx(app: Any) -> AsyncIterator[str]:
    """plx itself over a socket (websockets need one)."""
    server, task, url = await _serve(app)
    yield url
    server.should_exit = True
    await task


async def _running(app, client, owner, settings, stub: str, *, public: bool = False) -> None:
    """A private (or public) project with a notebook and a tensorboard `running` at `stub`."""
    body = {"name": "foo", "is_public": public}
    assert (await client.post("/api/v1/projects", json=body, headers=owner.headers)).is_success
    for kind in ("notebook", "tensorboard"):
        r = await client.post(f"{BASE}/{kind}/start", headers=owner.headers)
        assert r.status_code == 201, r.text
    reconciler = Reconciler(settings, app.state.sessionmaker, FakeRuntime(),
                            steps=[reconcile_plugins])
    await reconciler.reconcile_once()
    async with session_scope(app.state.sessionmaker) as session:
        for model in (NotebookJob, TensorboardJob):
            await session.execute(update(model).values(url=stub + "/"))


async def _token(app) -> str:
    async with session_scope(app.state.sessionmaker) as session:
        return (await session.scalars(select(NotebookJob.token))).one()


async def test_forwarding_with_credentials_and_what_the_workload_sees(
    app, client, owner, settings, stub
):
    await _running(app, client, owner, settings, stub)
    jupyter_token = await _token(app)
    # Path as sent (trailing slash, encoding), query less nothing, body streamed.
    r = await client.post(
        "/notebook/alice/foo/api/contents/a%20b/?x=1",
        content=b"x" * 300_000,
        headers={**owner.headers, "Cookie": "_xsrf=abc"},
    )
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["path"] == "/notebook/alice/foo/api/contents/a%20b/" and seen["query"] == "x=1"
    assert seen["method"] == "POST" and seen["body"] == 300_000
    # plx's credentials never reach the workload; jupyter's token (known to plx only) does.
    assert seen["headers"]["authorization"] == f"token {jupyter_token}"
    assert seen["headers"].get("cookie") == "_xsrf=abc"
    assert r.headers.get_list("set-cookie")[0].startswith("workload=1")  # the workload's own
    # A tensorboard gets no Authorization at all.
    r = await client.get("/tensorboard/alice/foo/", headers=owner.headers)
    assert r.status_code == 200 and "authorization" not in r.json()["headers"]
    assert r.json()["path"] == "/tensorboard/alice/foo/"
    # A redirect to the workload's own address becomes a path on plx.
    r = await client.get("/tensorboard/alice/foo/go-home", headers=owner.headers)
    assert r.status_code == 302 and r.headers["location"] == "/somewhere/"
    # `..` would leave the plugin's path on the workload.
    r = await client.get("/tensorboard/alice/foo/a/%2e%2e/%2E%2e/x", headers=owner.headers)
    assert r.status_code == 400


async def test_who_may_open_what(app, client, owner, other, admin, settings, stub):
    await _running(app, client, owner, settings, stub)
    for path in ("/notebook/alice/foo/", "/tensorboard/alice/foo/x"):
        r = await client.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "token"
        assert (await client.get(path, headers=other.headers)).status_code == 404
        assert (await client.get(path, headers=admin.headers)).status_code == 200
        r = await client.get(path, headers={"Authorization": "token " + "0" * 40})
        assert r.status_code == 401
    # No such plugin running: 404 (an experiment without tensorboard, a missing project).
    r = await client.get("/tensorboard/alice/foo/experiments/1/", headers=owner.headers)
    assert r.status_code == 404
    assert (await client.get("/notebook/alice/nope/", headers=owner.headers)).status_code == 404
    # A public project: its tensorboard for any user, its notebook for its writers only.
    r = await client.patch("/api/v1/alice/foo", json={"is_public": True}, headers=owner.headers)
    assert r.status_code == 200
    assert (await client.get("/tensorboard/alice/foo/", headers=other.headers)).status_code == 200
    assert (await client.get("/notebook/alice/foo/", headers=other.headers)).status_code == 403
    assert (await client.get("/notebook/alice/foo/")).status_code == 401
    # A run's token opens nothing, even the notebook's own.
    async with session_scope(app.state.sessionmaker) as session:
        notebook_id = (await session.scalars(select(NotebookJob.id))).one()
        user = await get_user(session, "alice")
        run_token = await create_run_token(session, user, kind="notebook", run_id=notebook_id)
    r = await client.get("/notebook/alice/foo/", headers={"Authorization": f"token {run_token}"})
    assert r.status_code == 403
    # Stopped: nothing behind the path any more.
    await client.post(f"{BASE}/notebook/stop", json={"commit": False}, headers=owner.headers)
    assert (await client.get("/notebook/alice/foo/", headers=owner.headers)).status_code == 404


async def test_a_browser_opens_it_with_the_ticket_of_the_api_url(
    app, client, owner, other, settings, stub
):
    await _running(app, client, owner, settings, stub)
    nb = (await client.get(f"{BASE}/notebook", headers=owner.headers)).json()
    url = httpx.URL(nb["url"])
    assert url.path == "/notebook/alice/foo/" and plugin_access.TICKET_PARAM in url.params
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as b:
        r = await b.get(url.raw_path.decode())
        assert r.status_code == 303 and r.headers["location"] == "/notebook/alice/foo/"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=3600" in cookie
        assert "path=/notebook/alice/foo;" in cookie
        r = await b.get("/notebook/alice/foo/tree")
        assert r.status_code == 200
        # plx's cookie stays with plx.
        assert plugin_access.cookie_name("/notebook/alice/foo/") not in str(r.json()["headers"])
        # It opens this notebook only: not the project's tensorboard.
        b.cookies.set(plugin_access.cookie_name("/tensorboard/alice/foo/"),
                      b.cookies[plugin_access.cookie_name("/notebook/alice/foo/")])
        assert (await b.get("/tensorboard/alice/foo/")).status_code == 401
    # The ticket of one plugin does not open another; an expired one opens nothing.
    ticket = url.params[plugin_access.TICKET_PARAM]
    r = await client.get(f"/tensorboard/alice/foo/?plx_ticket={ticket}")
    assert r.status_code == 401
    key = app.state.plugin_secret_key
    old = plugin_access.sign(key, "ticket", "/notebook/alice/foo/", owner.id, 1)
    assert (await client.get(f"/notebook/alice/foo/?plx_ticket={old}")).status_code == 401
    # Only writers get the notebook's URL; readers of a public project see the tensorboard's.
    await client.patch("/api/v1/alice/foo", json={"is_public": True}, headers=owner.headers)
    assert (await client.get(f"{BASE}/notebook", headers=other.headers)).json()["url"] is None
    boards = (await client.get(f"{BASE}/tensorboards", headers=other.headers)).json()
    assert boards["results"][0]["url"].startswith("http://testserver/tensorboard/alice/foo/?")


async def test_websockets_are_proxied_with_the_callers_credentials(
    app, client, owner, other, settings, stub, plx
):
    await _running(app, client, owner, settings, stub)
    jupyter_token = await _token(app)
    url = plx.replace("http", "ws") + "/notebook/alice/foo/api/kernels/k1/channels"
    protocol = "v1.kernel.websocket.jupyter.org"
    async with ws_connect(url, additional_headers=owner.headers, subprotocols=[protocol]) as ws:
        assert ws.subprotocol == protocol
        hello = json.loads(await ws.recv())
        assert hello == {"authorization": f"token {jupyter_token}", "cookie": None}
        await ws.send("ping")
        assert await ws.recv() == "PING"
    # A page of another site cannot open it with the browser's credentials.
    evil = {**owner.headers, "Origin": "https://evil.example"}
    with pytest.raises(InvalidStatus):
        async with ws_connect(url, additional_headers=evil):
            pass
    same = {**owner.headers, "Origin": plx}
    async with ws_connect(url, additional_headers=same, subprotocols=[protocol]) as ws:
        await ws.recv()
    for headers, status in (({}, 403), (other.headers, 403)):
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == status


async def test_a_workload_that_does_not_answer_is_a_502(app, client, owner, settings):
    await _running(app, client, owner, settings, "http://127.0.0.1:9")  # discard port: closed
    r = await client.get("/tensorboard/alice/foo/", headers=owner.headers)
    assert r.status_code == 502 and "did not answer" in r.json()["detail"]


def test_signed_values():
    key, prefix = b"k" * 32, "/notebook/alice/foo/"
    value = plugin_access.sign(key, "cookie", prefix, 7, 2_000)
    assert plugin_access.verify(key, "cookie", prefix, value, 1_000) == 7
    assert plugin_access.verify(key, "cookie", prefix, value, 2_001) is None  # expired
    assert plugin_access.verify(key, "ticket", prefix, value, 1_000) is None  # other purpose
    assert plugin_access.verify(key, "cookie", "/notebook/bob/foo/", value, 1_000) is None
    assert plugin_access.verify(b"x" * 32, "cookie", prefix, value, 1_000) is None
    forged = value.replace("7.", "8.", 1)
    assert plugin_access.verify(key, "cookie", prefix, forged, 1_000) is None
    for junk in (None, "", "a.b.c", "1.2", "1.2.3.4"):
        assert plugin_access.verify(key, "cookie", prefix, junk, 0) is None
    assert plugin_access.bad_path("/a/../b") and plugin_access.bad_path("/a/%2E%2e/b")
    assert plugin_access.bad_path("/a/..%2fb") and not plugin_access.bad_path("/a/..b/c")
