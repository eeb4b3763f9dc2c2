"""Run alembic migrations programmatically (`plx db upgrade`, `plx server`, tests)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings


class MigrationsNotFound(RuntimeError):
    """The alembic revisions are neither in the installed package nor beside a source checkout."""


def migrations_dir() -> Path:
    """Where the alembic revisions are, whatever the working directory.

    An installed wheel carries them as `app/migrations` (pyproject's force-include); a source
    checkout (editable install, tests) has them at the top of the repository.
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise MigrationsNotFound(
        f"alembic migrations not found in {package / 'migrations'} nor"
        f" {package.parent / 'migrations'}: reinstall plx from a complete wheel or source checkout"
    )


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Apply migrations. Must not be called from a running event loop (env.py uses asyncio.run)."""
    if settings.is_sqlite:
        path = settings.database_url.split("///", 1)[-1]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    cfg = alembic_config(settings.database_url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(cfg, revision)
        return
    # Called from inside an event loop (tests): env.py needs its own loop, so use a thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(command.upgrade, cfg, revision).result()


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
