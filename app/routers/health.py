from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


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
    except Exception as exc:  # noqa: BLE001 - any DB failure means "not ready"
        return JSONResponse({"status": "unavailable", "detail": str(exc)[:200]}, status_code=503)
    head = head_revision(request.app.state.settings.database_url)
    if current != head:
        return JSONResponse(
            {"status": "migrating", "detail": f"database at {current}, code at {head}"},
            status_code=503,
        )
    return JSONResponse({"status": "ok"})
