"""Following a run's log over a WebSocket for its reader (app/routers/streams.py): each message is
`{"log_lines": [...], "status": <status or null>}`; the stream sends the log's lines as they are
written and closes once the run is done and its log fully sent, or when the client goes away."""

from __future__ import annotations

import asyncio
import json

from starlette.websockets import WebSocket, WebSocketDisconnect

from app.kinds import RunKind
from app.logic.statuses import is_done
from app.services.logs import LogFollower

POLL_SECONDS = 0.5
MAX_LINES_PER_MESSAGE = 500


async def _status(websocket: WebSocket, kind: RunKind, run_id: int) -> str | None:
    async with websocket.app.state.sessionmaker() as session:
        run = await session.get(kind.model, run_id)
        return None if run is None else run.last_status


async def _send_lines(websocket: WebSocket, lines: list[str], status: str | None) -> None:
    # A status change with no new line is still one message.
    for start in range(0, max(len(lines), 1), MAX_LINES_PER_MESSAGE):
        chunk = lines[start : start + MAX_LINES_PER_MESSAGE]
        await websocket.send_text(json.dumps({"log_lines": chunk, "status": status}))


async def follow_log(websocket: WebSocket, run_kind: RunKind, run_id: int) -> None:
    """Send the run's log to an accepted WebSocket until the run is done or the client leaves."""
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
