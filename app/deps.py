"""Named dependencies: session (commits before the response), principal, list parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import PermissionDenied
from app.services.listing import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, ListParams
from app.services.logs import LogUsage
from app.services.users import Principal, authenticate

# Declared as an API key header so the docs page's "Authorize" button works:
# enter `token <key>`.
token_header = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    description="`token <key>` (from POST /api/v1/users/token)",
)


READ_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; committed when the endpoint returns, before the response.
    A GET on Postgres gets an autocommit session (app/db.py: no BEGIN/COMMIT round trips)."""
    state = request.app.state
    reader = getattr(state, "read_sessionmaker", None)
    maker = reader if reader is not None and request.method in READ_METHODS else state.sessionmaker
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    # Work queued during the request is only woken once its rows are committed.
    for callback in session.info.get("after_commit", ()):
        callback()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_settings(request: Request) -> Settings:
    # async: a sync dependency would run in the thread pool (a thread hop per request).
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_log_usage(request: Request) -> LogUsage:
    return request.app.state.log_usage


LogUsageDep = Annotated[LogUsage, Depends(get_log_usage)]


async def get_principal(
    session: SessionDep, authorization: Annotated[str | None, Depends(token_header)]
) -> Principal:
    return await authenticate(session, authorization)


AuthDep = Annotated[Principal, Depends(get_principal)]


async def get_user_principal(principal: AuthDep) -> Principal:
    """A user token (not a run-scoped one)."""
    if principal.is_run_scoped:
        raise PermissionDenied("A run token may only act on its own run.")
    return principal


UserAuthDep = Annotated[Principal, Depends(get_user_principal)]


async def get_superuser(principal: UserAuthDep) -> Principal:
    if not principal.user.is_superuser:
        raise PermissionDenied()
    return principal


SuperuserDep = Annotated[Principal, Depends(get_superuser)]


async def list_params(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
    sort: Annotated[str | None, Query(max_length=1000, description="e.g. -created_at")] = None,
    query: Annotated[
        str | None, Query(max_length=5000, description="e.g. status:running|failed")
    ] = None,
) -> ListParams:
    return ListParams(limit=limit, offset=offset, sort=sort, query=query, url=request.url)


ListDep = Annotated[ListParams, Depends(list_params)]


def wake_after_commit(session: AsyncSession, request: Request) -> None:
    """Ask the reconciler for a pass once this request's transaction is committed."""
    reconciler = getattr(request.app.state, "reconciler", None)
    if reconciler is not None:
        session.info.setdefault("after_commit", []).append(reconciler.wake)
