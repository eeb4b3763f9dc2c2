"""Live log streams over WebSocket, as the v0 CLI's `logs` (without `--past`) reads them
(app.services.log_stream sends them)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, WebSocket

from app.deps import PRINCIPAL_STATE, check_run_scope, websocket_credentials
from app.errors import PlxError
from app.kinds import RUNS
from app.schemas.common import RowId
from app.services.log_stream import follow_log
from app.services.runs import get_run
from app.services.users import authenticate

router = APIRouter(tags=["logs"])

KINDS = {k.segment: k for k in RUNS}
# Close codes in the private range (4000-4999), named after the HTTP status they stand for.
CLOSE_CODES = {401: 4401, 403: 4403, 404: 4404}


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
    await follow_log(websocket, run_kind, run_id)
