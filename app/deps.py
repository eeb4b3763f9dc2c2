"""Named dependencies: session (commits before the response), principal, list parameters, the
project and the run of the path (resolved or 404, with read or write access)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection

from app.config import Settings
from app.db import session_scope
from app.errors import PermissionDenied, Unauthorized
from app.kinds import RunKind
from app.schemas.common import RowId
from app.services.listing import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, ListParams
from app.services.logs import LogUsage
from app.services.projects import ProjectAccess, get_project
from app.services.runs import RunAccess, get_run
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
    async with session_scope(maker) as session:
        yield session
    # Work queued during the request is only woken once its rows are committed.
    for callback in session.info.get("after_commit", ()):
        callback()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_settings(request: Request) -> Settings:
    # async: a sync dependency would run in the thread pool (a thread hop per request).
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


# Where the request middleware (app.observability) puts the caller it resolved before routing.
PRINCIPAL_STATE = "principal"
RUN_SCOPE_ATTR = "__plx_run_scope__"
OWN_RUN_ONLY = "A run token may only act on its own run."
F = TypeVar("F", bound=Callable[..., Any])


# Browsers cannot set headers on a WebSocket: they offer the subprotocols `plx.token, <token>`
# instead (never a token in the URL, where logs and history would keep it).
BROWSER_PROTOCOL = "plx.token"


def websocket_credentials(conn: HTTPConnection) -> tuple[str | None, str | None]:
    """The Authorization value of a WebSocket handshake, and the subprotocol to accept when it
    came as one."""
    header = conn.headers.get("authorization")
    if header:
        return header, None
    offered = [p.strip() for p in conn.headers.get("sec-websocket-protocol", "").split(",")]
    if len(offered) == 2 and offered[0] == BROWSER_PROTOCOL and offered[1]:
        return f"token {offered[1]}", BROWSER_PROTOCOL
    return None, None


async def resolve_principal(state: Any, authorization: str | None) -> Principal:
    """The caller of a request, resolved before its body is read: Unauthorized (401) for missing,
    invalid or revoked credentials, including the token of a run done for longer than
    PLX_RUN_TOKEN_GRACE_SECONDS (app.services.run_tokens)."""
    maker = getattr(state, "read_sessionmaker", None) or state.sessionmaker
    async with maker() as session:
        principal = await authenticate(session, authorization)
        clock = getattr(state, "run_clock", None)
        kind, run_id = principal.run_kind, principal.run_id
        if kind is not None and run_id is not None and clock is not None:
            if await clock.revoked(session, kind, run_id):
                raise Unauthorized("Invalid token: its run is done.")
    return principal


@dataclass(frozen=True)
class RunScope:
    kinds: frozenset[str]
    id_param: str | None


def run_token_route(*kinds: str, id_param: str | None = None) -> Callable[[F], F]:
    """Let the token of a run of these kinds call the decorated route (put it under the route
    decorator). With `id_param`, that path parameter must be the token's own run; without, the
    route narrows what it serves to the run itself. Every other route refuses run tokens."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, RUN_SCOPE_ATTR, RunScope(frozenset(kinds), id_param))
        return endpoint

    return mark


def check_run_scope(conn: HTTPConnection, principal: Principal) -> None:
    """Deny by default: a run token may call only the routes marked with `run_token_route`, for
    its own run (contract.md 3). 403, or close code 4403 on a WebSocket."""
    if not principal.is_run_scoped:
        return
    endpoint = getattr(conn.scope.get("route"), "endpoint", None)
    scope: RunScope | None = getattr(endpoint, RUN_SCOPE_ATTR, None)
    allowed = scope is not None and principal.run_kind in scope.kinds
    if allowed and scope is not None and scope.id_param is not None:
        allowed = conn.path_params.get(scope.id_param) == str(principal.run_id)
    if not allowed:
        if conn.scope["type"] == "websocket":
            raise WebSocketException(code=4403, reason=OWN_RUN_ONLY)
        raise PermissionDenied(OWN_RUN_ONLY)


async def guard_run_tokens(conn: HTTPConnection) -> None:
    """An app-wide dependency (every route, WebSockets too): `check_run_scope` on the caller
    the middleware resolved, so a route refuses run tokens unless it opted in."""
    principal = conn.scope.get("state", {}).get(PRINCIPAL_STATE)
    if principal is not None:
        check_run_scope(conn, principal)


async def get_log_usage(request: Request) -> LogUsage:
    return request.app.state.log_usage


LogUsageDep = Annotated[LogUsage, Depends(get_log_usage)]


async def get_principal(
    request: Request,
    session: SessionDep,
    authorization: Annotated[str | None, Depends(token_header)],
) -> Principal:
    principal = request.scope.get("state", {}).get(PRINCIPAL_STATE)
    if principal is None:  # not resolved before routing (an app without the middleware)
        principal = await authenticate(session, authorization)
        check_run_scope(request, principal)
    return principal


AuthDep = Annotated[Principal, Depends(get_principal)]


async def get_user_principal(principal: AuthDep) -> Principal:
    """A user token (not a run-scoped one)."""
    if principal.is_run_scoped:
        raise PermissionDenied(OWN_RUN_ONLY)
    return principal


UserAuthDep = Annotated[Principal, Depends(get_user_principal)]
USER_ONLY = Depends(get_user_principal)  # for `dependencies=[...]`: refuse run tokens


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


async def read_project(
    username: str, project: str, session: SessionDep, principal: AuthDep
) -> ProjectAccess:
    """The project of the path, readable by the caller (404 when it is not)."""
    return await get_project(session, principal, username, project)


async def write_project(
    username: str, project: str, session: SessionDep, principal: AuthDep
) -> ProjectAccess:
    """The project of the path, writable by the caller (404 unseen, 403 read-only)."""
    return await get_project(session, principal, username, project, write=True)


ProjectRead = Annotated[ProjectAccess, Depends(read_project)]
ProjectWrite = Annotated[ProjectAccess, Depends(write_project)]


async def wake_reconciler(request: Request, session: SessionDep) -> None:
    """For `dependencies=[WAKE]`: a reconcile pass once the request's changes are committed
    (a request that fails commits nothing, and wakes nothing)."""
    wake_after_commit(session, request)


WAKE = Depends(wake_reconciler)

# read: whoever may see the project; write: its owner (a run token is refused); run_write: the
# owner or the run itself with its own token (statuses, logs, metrics, heartbeats).
RunMode = Literal["read", "write", "run_write"]


def run_dependency(kind: RunKind, mode: RunMode = "read", *, facts: bool = False) -> Any:
    """`Depends` on the run `{kind.id_param}` of the path's project: project, owner and run in
    one query (with `facts`, an experiment's detail facts too); 404 when the caller cannot see
    it, 403 when `mode` asks more than the caller may. Use as
    `Annotated[RunAccess, run_dependency(kind, mode)]`."""

    async def resolve(
        username: str, project: str, session: SessionDep, principal: AuthDep, **path: int
    ) -> RunAccess:
        return await get_run(
            session,
            principal,
            username,
            project,
            kind,
            path[kind.id_param],
            write=mode == "write",
            run_write=mode == "run_write",
            facts_for=principal.user.id if facts else None,
        )

    # The id's name comes from the kind (`exp_id`, `run_id`): FastAPI reads the signature.
    params = inspect.signature(resolve, eval_str=True).parameters.values()
    fixed = [p for p in params if p.name != "path"]
    run_id = inspect.Parameter(kind.id_param, inspect.Parameter.KEYWORD_ONLY, annotation=RowId)
    resolve.__signature__ = inspect.Signature([*fixed, run_id])  # type: ignore[attr-defined]
    return Depends(resolve)
