"""`GET /api/v1/bookmarks/{username}/{kind}`: a user's bookmarked projects, groups and runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import AuthDep, ListDep, SessionDep
from app.schemas.common import Page
from app.schemas.projects import BookmarkOut
from app.services import bookmarks as service

router = APIRouter(prefix="/api/v1/bookmarks", tags=["bookmarks"])


@router.get(
    "/{username}/{kind}",
    summary="A user's bookmarks of one kind (projects, experiments, groups, jobs, builds)",
    response_model=Page[dict[str, Any]],
)
async def list_bookmarks(
    username: str, kind: str, session: SessionDep, principal: AuthDep, params: ListDep
) -> Any:
    found = await service.list_bookmarks(session, principal, username, kind, params)
    return Page.of(found, BookmarkOut.model_dump)
