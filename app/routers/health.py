from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])
log = logging.getLogger("plx.health")


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database reachable and migrations at head")
async def readyz(request: Request) -> JSONResponse:
    engine = request.app.state.engine
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        current = await current_revision(engine)
    except Exception:
        # The error names hosts, users and paths: the log gets it, an anonymous caller does not.
        log.exception("readiness check: the database is unavailable")
        return JSONResponse(
            {"status": "unavailable", "detail": "The database is unavailable."}, status_code=503
        )
    head = head_revision(request.app.state.settings.database_url)
    if current != head:
        return JSONResponse(
            {"status": "migrating", "detail": f"database at {current}, code at {head}"},
            status_code=503,
        )
    return JSONResponse({"status": "ok"})
