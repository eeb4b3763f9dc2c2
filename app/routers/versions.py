"""Version answers and the log handler the v0 CLI asks for (no authentication needed)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.config import SPOKEN_CLI_VERSION
from app.deps import SettingsDep

# The platform plx stands in for: the v0 server release whose API it speaks. It does not move with
# the CLI settings, so `versions/platform` and `versions/chart` always agree with each other.
PLATFORM_VERSION = SPOKEN_CLI_VERSION
PLATFORM_MIN_VERSION = "0.3.0"
CHART_VERSION = PLATFORM_VERSION

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


def _cli_versions(settings: SettingsDep) -> VersionOut:
    # A CLI older than `min_version` tells its user to upgrade and stops (polyaxon-cli-0.3.9.md).
    return VersionOut(
        latest_version=settings.cli_latest_version, min_version=settings.cli_min_version
    )


@router.get("/versions/cli", summary="CLI versions this server supports", response_model=VersionOut)
async def cli_version(settings: SettingsDep) -> VersionOut:
    return _cli_versions(settings)


@router.get("/versions/platform", summary="Platform version", response_model=VersionOut)
async def platform_version() -> VersionOut:
    return VersionOut(latest_version=PLATFORM_VERSION, min_version=PLATFORM_MIN_VERSION)


@router.get("/versions/lib", summary="Client library versions", response_model=VersionOut)
async def lib_version(settings: SettingsDep) -> VersionOut:
    # polyaxon-client is released with polyaxon-cli under the same version numbers.
    return _cli_versions(settings)


@router.get("/versions/chart", summary="Helm chart version", response_model=ChartVersionOut)
async def chart_version() -> ChartVersionOut:
    return ChartVersionOut(version=CHART_VERSION)


@router.get(
    "/log_handler", summary="Client error reporting (disabled)", response_model=LogHandlerOut
)
async def log_handler() -> LogHandlerOut:
    # No DSN: a DSN would make every CLI report its errors to that Sentry project.
    return LogHandlerOut(dsn=None, environment="plx", tags={})
