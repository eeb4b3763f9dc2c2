"""Readiness: the database answers and its schema is at the code's migration head."""

from __future__ import annotations

import logging

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.migrate import current_revision, head_revision

log = logging.getLogger("plx.health")


class Readiness(BaseModel):
    status: str  # ok | unavailable | migrating
    detail: str | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ok"


async def readiness(engine: AsyncEngine, database_url: str) -> Readiness:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        current = await current_revision(engine)
    except Exception:
        # The error names hosts, users and paths: the log gets it, an anonymous caller does not.
        log.exception("readiness check: the database is unavailable")
        return Readiness(status="unavailable", detail="The database is unavailable.")
    head = head_revision(database_url)
    if current != head:
        return Readiness(status="migrating", detail=f"database at {current}, code at {head}")
    return Readiness(status="ok")
