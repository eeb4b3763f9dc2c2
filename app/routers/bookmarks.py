"""`GET /api/v1/bookmarks/{username}/{kind}`: a user's bookmarked projects, groups and runs; and
the bookmark/unbookmark pair every bookmarkable resource has.

No `from __future__ import annotations`: the pair is built per resource, and FastAPI must see
the target's dependency annotation as an object.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Response, status

from app.deps import USER_ONLY, AuthDep, ListDep, SessionDep
from app.schemas.common import Page
from app.schemas.projects import BookmarkOut
from app.services import bookmarks as service

router = APIRouter(prefix="/api/v1/bookmarks", tags=["bookmarks"])
NO_CONTENT: dict[str, Any] = {"status_code": status.HTTP_204_NO_CONTENT, "response_class": Response}
# (session, user, the resolved target, on) -> None
Mark = Callable[[SessionDep, Any, Any, bool], Awaitable[None]]


def add_bookmark_routes(
    target_router: APIRouter, path: str, target: Any, mark: Mark, *, noun: str, answer: Any
) -> None:
    """`POST {path}/bookmark` (201, `answer` is the body's schema) and `DELETE
    {path}/unbookmark` (204) for the calling user; `target` resolves what is marked (a
    `Depends`), `mark` records or drops the bookmark."""

    @target_router.post(
        path + "/bookmark",
        summary=f"Bookmark {noun}",
        status_code=status.HTTP_201_CREATED,
        response_model=answer,
        dependencies=[USER_ONLY],
    )
    async def bookmark(
        found: Annotated[Any, target], session: SessionDep, principal: AuthDep
    ) -> Any:
        await mark(session, principal.user, found, True)
        return {"detail": "Bookmarked."}

    @target_router.delete(
        path + "/unbookmark",
        summary=f"Remove a bookmark of {noun}",
        dependencies=[USER_ONLY],
        **NO_CONTENT,
    )
    async def unbookmark(
        found: Annotated[Any, target], session: SessionDep, principal: AuthDep
    ) -> Response:
        await mark(session, principal.user, found, False)
        return Response(status_code=status.HTTP_204_NO_CONTENT)


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
