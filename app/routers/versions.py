"""Version answers and the log handler the v0 CLI asks for (no authentication needed)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

# The polyaxon-cli / polyaxon-client release plx speaks (polyaxon-cli-0.3.9.md). An older CLI
# than MIN_CLI_VERSION is told to upgrade by the CLI itself when it reads `min_version`.
LATEST_CLI_VERSION = "0.3.9"
MIN_CLI_VERSION = "0.3.0"
PLATFORM_VERSION = "0.3.9"
CHART_VERSION = "0.3.9"

router = APIRouter(prefix="/api/v1", tags=["versions"])


class VersionOut(BaseModel):
    latest_version: str
    min_version: str


class ChartVersionOut(BaseModel):
    version: str


class LogHandlerOut(BaseModel):
    dsn: str | None
    environment: str
    tags: dict[str, str]


@router.get("/versions/cli", summary="CLI versions this server supports", response_model=VersionOut)
async def cli_version() -> VersionOut:
    return VersionOut(latest_version=LATEST_CLI_VERSION, min_version=MIN_CLI_VERSION)


@router.get("/versions/platform", summary="Platform version", response_model=VersionOut)
async def platform_version() -> VersionOut:
    return VersionOut(latest_version=PLATFORM_VERSION, min_version=MIN_CLI_VERSION)


@router.get("/versions/lib", summary="Client library versions", response_model=VersionOut)
async def lib_version() -> VersionOut:
    return VersionOut(latest_version=LATEST_CLI_VERSION, min_version=MIN_CLI_VERSION)


@router.get("/versions/chart", summary="Helm chart version", response_model=ChartVersionOut)
async def chart_version() -> ChartVersionOut:
    return ChartVersionOut(version=CHART_VERSION)


@router.get(
    "/log_handler", summary="Client error reporting (disabled)", response_model=LogHandlerOut
)
async def log_handler() -> LogHandlerOut:
    # No DSN: a DSN would make every CLI report its errors to that Sentry project.
    return LogHandlerOut(dsn=None, environment="plx", tags={})
