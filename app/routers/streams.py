"""Live log streams over WebSocket, as the v0 CLI's `logs` (without `--past`) reads them.

Each message is `{"log_lines": [...], "status": <status or null>}`; the stream sends the log's
lines as they are written and closes once the run is done and its log fully sent.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from app.errors import PlxError
from app.logic.statuses import is_done
from app.schemas.common import RowId
from app.services.runs import get_run, log_path
from app.services.users import authenticate

router = APIRouter(tags=["logs"])

KINDS = {"experiments": "experiment", "jobs": "job", "builds": "build"}
POLL_SECONDS = 0.5
MAX_LINES_PER_MESSAGE = 500
# Close codes in the private range (4000-4999), named after the HTTP status they stand for.
CLOSE_CODES = {401: 4401, 403: 4403, 404: 4404}


async def _status(websocket: WebSocket, kind: str, run_id: int) -> str | None:
    from app.services.runs import RUN_KINDS

    async with websocket.app.state.sessionmaker() as session:
        run = await session.get(RUN_KINDS[kind], run_id)
        return None if run is None else run.last_status


def _read_new(path: Path, offset: int) -> tuple[list[str], int]:
    """Complete lines written since `offset` (a partial last line waits for its newline)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    text = data[: end + 1].decode(errors="replace")
    return text.splitlines(), offset + end + 1


async def _send_lines(websocket: WebSocket, lines: list[str], status: str | None) -> None:
    # A status change with no new line is still one message.
    for start in range(0, max(len(lines), 1), MAX_LINES_PER_MESSAGE):
        chunk = lines[start : start + MAX_LINES_PER_MESSAGE]
        await websocket.send_text(json.dumps({"log_lines": chunk, "status": status}))


# Browsers cannot set headers on a WebSocket: they offer the subprotocols `plx.token, <token>`
# instead (never a token in the URL, where logs and history would keep it).
BROWSER_PROTOCOL = "plx.token"


def _credentials(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The Authorization value, and the subprotocol to accept when it came as one."""
    header = websocket.headers.get("authorization")
    if header:
        return header, None
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    if len(offered) == 2 and offered[0] == BROWSER_PROTOCOL and offered[1]:
        return f"token {offered[1]}", BROWSER_PROTOCOL
    return None, None


@router.websocket("/ws/v1/{username}/{project}/{kind}/{run_id}/logs")
async def stream_logs(
    websocket: WebSocket,
    username: str,
    project: str,
    kind: Literal["experiments", "jobs", "builds"],
    run_id: RowId,
) -> None:
    run_kind = KINDS[kind]
    authorization, subprotocol = _credentials(websocket)
    async with websocket.app.state.sessionmaker() as session:
        try:
            principal = await authenticate(session, authorization)
            await get_run(session, principal, username, project, run_kind, run_id)
        except PlxError as exc:
            await websocket.close(code=CLOSE_CODES.get(exc.status_code, 4400), reason=exc.message)
            return
    await websocket.accept(subprotocol=subprotocol)
    path = log_path(websocket.app.state.settings, run_kind, run_id)
    offset, last_status = 0, None
    # A client that goes away must end the stream: a quiet run's loop never sends, so it would
    # never notice, and each abandoned stream would poll the database for ever.
    gone = asyncio.create_task(_until_disconnect(websocket))
    try:
        while not gone.done():
            status = await _status(websocket, run_kind, run_id)
            lines, offset = _read_new(path, offset)
            changed = status != last_status
            if lines or changed:
                await _send_lines(websocket, lines or [], status if changed else None)
                last_status = status
            if status is None or is_done(status):
                # The run is over (or deleted): send what is left, then end the session.
                lines, offset = _read_new(path, offset)
                if lines:
                    await _send_lines(websocket, lines, None)
                await websocket.close()
                return
            await asyncio.wait({gone}, timeout=POLL_SECONDS)
    except WebSocketDisconnect:
        return
    finally:
        gone.cancel()


async def _until_disconnect(websocket: WebSocket) -> None:
    """Returns when the client closes (what it sends otherwise is ignored)."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
