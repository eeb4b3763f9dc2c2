"""Live log streams over WebSocket, as the v0 CLI's `logs` (without `--past`) reads them.

Each message is `{"log_lines": [...], "status": <status or null>}`; the stream sends the log's
lines as they are written and closes once the run is done and its log fully sent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from app.deps import PRINCIPAL_STATE, check_run_scope, websocket_credentials
from app.errors import PlxError
from app.kinds import RUNS, RunKind
from app.logic.statuses import is_done
from app.schemas.common import RowId
from app.services.logs import LogFollower
from app.services.runs import get_run
from app.services.users import authenticate

router = APIRouter(tags=["logs"])

KINDS = {k.segment: k for k in RUNS}
POLL_SECONDS = 0.5
MAX_LINES_PER_MESSAGE = 500
# Close codes in the private range (4000-4999), named after the HTTP status they stand for.
CLOSE_CODES = {401: 4401, 403: 4403, 404: 4404}


async def _status(websocket: WebSocket, kind: RunKind, run_id: int) -> str | None:
    async with websocket.app.state.sessionmaker() as session:
        run = await session.get(kind.model, run_id)
        return None if run is None else run.last_status


async def _send_lines(websocket: WebSocket, lines: list[str], status: str | None) -> None:
    # A status change with no new line is still one message.
    for start in range(0, max(len(lines), 1), MAX_LINES_PER_MESSAGE):
        chunk = lines[start : start + MAX_LINES_PER_MESSAGE]
        await websocket.send_text(json.dumps({"log_lines": chunk, "status": status}))


@router.websocket("/ws/v1/{username}/{project}/{kind}/{run_id}/logs")
async def stream_logs(
    websocket: WebSocket,
    username: str,
    project: str,
    kind: Literal["experiments", "jobs", "builds"],
    run_id: RowId,
) -> None:
    run_kind = KINDS[kind]
    authorization, subprotocol = websocket_credentials(websocket)
    async with websocket.app.state.sessionmaker() as session:
        try:
            # Resolved by the request middleware at the handshake (and refused there without
            # valid credentials); a run's token was refused by app.deps.guard_run_tokens.
            principal = websocket.scope.get("state", {}).get(PRINCIPAL_STATE)
            if principal is None:
                principal = await authenticate(session, authorization)
                check_run_scope(websocket, principal)
            await get_run(session, principal, username, project, run_kind, run_id)
        except PlxError as exc:
            await websocket.close(code=CLOSE_CODES.get(exc.status_code, 4400), reason=exc.message)
            return
    await websocket.accept(subprotocol=subprotocol)
    follower = LogFollower(websocket.app.state.settings, run_kind.kind.value, run_id)
    last_status = None
    # A client that goes away must end the stream: a quiet run's loop never sends, so it would
    # never notice, and each abandoned stream would poll the database for ever.
    gone = asyncio.create_task(_until_disconnect(websocket))
    try:
        while not gone.done():
            status = await _status(websocket, run_kind, run_id)
            lines = follower.new_lines()
            changed = status != last_status
            if lines or changed:
                await _send_lines(websocket, lines or [], status if changed else None)
                last_status = status
            if status is None or is_done(status):
                # The run is over (or deleted): send what is left, then end the session.
                if lines := follower.new_lines():
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
