"""Build routes under /api/v1/{username}/{project}/builds (same shape as jobs, no restart)."""

from __future__ import annotations

from app.kinds import BUILD
from app.routers.jobs import make_router

router = make_router(BUILD)
