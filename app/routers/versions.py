"""Version answers and the log handler the v0 CLI asks for (no authentication needed)."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import SettingsDep
from app.schemas.versions import (
    CHART,
    NO_LOG_HANDLER,
    PLATFORM,
    ChartVersionOut,
    LogHandlerOut,
    VersionOut,
)

router = APIRouter(prefix="/api/v1", tags=["versions"])


@router.get("/versions/cli", summary="CLI versions this server supports", response_model=VersionOut)
# polyaxon-client is released with polyaxon-cli under the same version numbers.
@router.get("/versions/lib", summary="Client library versions", response_model=VersionOut)
async def cli_version(settings: SettingsDep) -> VersionOut:
    return VersionOut.cli(settings)


@router.get("/versions/platform", summary="Platform version", response_model=VersionOut)
async def platform_version() -> VersionOut:
    return PLATFORM


@router.get("/versions/chart", summary="Helm chart version", response_model=ChartVersionOut)
async def chart_version() -> ChartVersionOut:
    return CHART


@router.get(
    "/log_handler", summary="Client error reporting (disabled)", response_model=LogHandlerOut
)
async def log_handler() -> LogHandlerOut:
    return NO_LOG_HANDLER
