"""`logs` without `--past`: the WebSocket stream sends lines live and closes when the run ends."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets

CMD = "for i in 1 2 3; do echo line$i; sleep 0.4; done"


async def _collect(url: str, token: str) -> list[dict]:
    messages = []
    async with websockets.connect(url, additional_headers={"Authorization": f"Token {token}"},
                                  open_timeout=10) as ws:
        async for raw in ws:
            messages.append(json.loads(raw))
    return messages


def test_experiment_log_stream(server):
    srv = server()
    with srv.client() as c:
        assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        config = {"version": 1, "kind": "experiment", "run": {"cmd": CMD}}
        exp_id = c.post("/api/v1/admin/p/experiments", json={"config": config}).json()["id"]
    ws_url = srv.url.replace("http://", "ws://") + f"/ws/v1/admin/p/experiments/{exp_id}/logs/"
    messages = asyncio.run(asyncio.wait_for(_collect(ws_url, srv.token), 60))
    lines = [line for m in messages for line in m["log_lines"]]
    assert [line for line in lines if line.startswith("line")] == ["line1", "line2", "line3"]
    statuses = [m["status"] for m in messages if m["status"]]
    assert statuses[-1] == "succeeded"
    assert all(isinstance(m["log_lines"], list) for m in messages)


def test_log_stream_refuses_bad_tokens(server):
    srv = server()
    with srv.client() as c:
        c.post("/api/v1/projects", json={"name": "p", "is_public": False})
        config = {"version": 1, "kind": "experiment", "run": {"cmd": "true"}}
        exp_id = c.post("/api/v1/admin/p/experiments", json={"config": config}).json()["id"]
    ws_url = srv.url.replace("http://", "ws://") + f"/ws/v1/admin/p/experiments/{exp_id}/logs"
    with pytest.raises(websockets.exceptions.WebSocketException):
        asyncio.run(_collect(ws_url, "wrong"))
    missing = ws_url.replace(f"/{exp_id}/", "/999999/")
    with pytest.raises(websockets.exceptions.WebSocketException):
        asyncio.run(_collect(missing, srv.token))


def test_log_stream_takes_the_token_as_a_browser_subprotocol(server):
    """Browsers cannot set headers on a WebSocket: the dashboard offers `plx.token, <token>`."""
    srv = server()
    with srv.client() as c:
        assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        config = {"version": 1, "kind": "experiment", "run": {"cmd": CMD}}
        exp_id = c.post("/api/v1/admin/p/experiments", json={"config": config}).json()["id"]
    ws_url = srv.url.replace("http://", "ws://") + f"/ws/v1/admin/p/experiments/{exp_id}/logs"

    async def collect(token: str) -> tuple[str | None, list[dict]]:
        async with websockets.connect(
            ws_url, subprotocols=["plx.token", token], open_timeout=10
        ) as ws:
            return ws.subprotocol, [json.loads(raw) async for raw in ws]

    protocol, messages = asyncio.run(asyncio.wait_for(collect(srv.token), 60))
    assert protocol == "plx.token"
    assert "line3" in [line for m in messages for line in m["log_lines"]]
    with pytest.raises(websockets.exceptions.WebSocketException):
        asyncio.run(collect("wrong"))


def test_an_abandoned_stream_of_a_quiet_run_ends_and_the_server_stops_promptly(server):
    """A tracking-only run never ends nor logs: its stream must still end when the client
    leaves, or every abandoned stream polls for ever (and holds up the server's shutdown)."""
    srv = server()
    with srv.client() as c:
        assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        config = {"version": 1, "kind": "experiment"}
        exp_id = c.post("/api/v1/admin/p/experiments", json={"config": config}).json()["id"]
    ws_url = srv.url.replace("http://", "ws://") + f"/ws/v1/admin/p/experiments/{exp_id}/logs"

    async def open_and_leave() -> None:
        ws = await websockets.connect(
            ws_url, additional_headers={"Authorization": f"Token {srv.token}"}, open_timeout=10
        )
        await asyncio.wait_for(ws.recv(), 10)  # the first status message
        await ws.close()

    asyncio.run(open_and_leave())
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 5
