"""Version answers and the log handler the v0 CLI asks for."""

from __future__ import annotations

from pydantic import BaseModel

from app.config import SPOKEN_CLI_VERSION, Settings

# The platform plx stands in for: the v0 server release whose API it speaks. It does not move with
# the CLI settings, so `versions/platform` and `versions/chart` always agree with each other.
PLATFORM_VERSION = SPOKEN_CLI_VERSION
PLATFORM_MIN_VERSION = "0.3.0"
CHART_VERSION = PLATFORM_VERSION


class VersionOut(BaseModel):
    latest_version: str
    min_version: str

    @classmethod
    def cli(cls, settings: Settings) -> VersionOut:
        # A CLI older than `min_version` tells its user to upgrade and stops
        # (polyaxon-cli-0.3.9.md).
        return cls(latest_version=settings.cli_latest_version, min_version=settings.cli_min_version)


class ChartVersionOut(BaseModel):
    version: str


class LogHandlerOut(BaseModel):
    dsn: str | None
    environment: str
    tags: dict[str, str]


PLATFORM = VersionOut(latest_version=PLATFORM_VERSION, min_version=PLATFORM_MIN_VERSION)
CHART = ChartVersionOut(version=CHART_VERSION)
# No DSN: a DSN would make every CLI report its errors to that Sentry project.
NO_LOG_HANDLER = LogHandlerOut(dsn=None, environment="plx", tags={})
