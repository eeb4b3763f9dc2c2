from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.services.health import Readiness, readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return Readiness(status="ok").model_dump(exclude_none=True)


@router.get("/readyz", summary="Readiness: database reachable and migrations at head")
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    answer = await readiness(state.engine, state.settings.database_url)
    return JSONResponse(answer.model_dump(exclude_none=True), 200 if answer.ready else 503)
