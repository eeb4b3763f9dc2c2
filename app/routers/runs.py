"""The routes every kind of run has, generated from its description (app.kinds): get, update,
delete, stop, status history, log, heartbeat and bookmark under `/{segment}/{id}`.

No `from __future__ import annotations` here: the handlers are built per kind, and FastAPI must
see their dependency annotations as objects, not as names of this module.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import (
    WAKE,
    AuthDep,
    ListDep,
    LogUsageDep,
    SessionDep,
    SettingsDep,
    run_dependency,
    run_token_route,
)
from app.kinds import RunKind
from app.routers.bookmarks import NO_CONTENT, add_bookmark_routes
from app.routers.logfiles import LOG_ANSWER, TailQuery, log_response
from app.schemas.common import Detail, Page
from app.schemas.statuses import StatusCreate, status_out_for
from app.services import logs, runs
from app.services.runs import RunAccess
from app.services.users import Principal

STOPPING = Detail(detail="Stopping.")
LOGGED = Detail(detail="Logged.")
ALIVE = Detail(detail="ok")
# Of the kinds' `clones`, by strategy: "{}" is the kind's label.
CLONE_SUMMARIES = {
    "restart": "Restart as a new {}",
    "resume": "Resume in a new {}",
    "copy": "Copy into a new {}",
}


@dataclass(frozen=True)
class RunRoutes:
    """What the shared routes of a kind need besides its description: its detail shape, how a
    row becomes one, and its update body."""

    detail: type[BaseModel]
    render: Callable[[AsyncSession, RunAccess, Principal], Awaitable[BaseModel]]
    update_body: type[BaseModel]
    detail_options: dict[str, Any] = field(default_factory=dict)  # more route options


def article(kind: RunKind) -> str:
    return f"an {kind.label}" if kind.label[0] in "aeiou" else f"a {kind.label}"


def add_run_routes(router: APIRouter, kind: RunKind, api: RunRoutes) -> None:
    """Register the shared routes of `kind` on `router` (under `/api/v1/{username}/{project}`)."""
    one = f"/{kind.segment}/{{{kind.id_param}}}"
    name = article(kind)
    status_out = status_out_for(kind)
    detailed = run_dependency(kind, facts=True)
    readable = run_dependency(kind)
    writable = run_dependency(kind, "write")
    by_itself = run_dependency(kind, "run_write")
    own_run = run_token_route(kind.kind.value, id_param=kind.id_param)
    detail: dict[str, Any] = {"response_model": api.detail, **api.detail_options}

    @router.get(one, summary=f"Get {name}", **detail)
    @own_run
    async def get_run(
        ra: Annotated[RunAccess, detailed], session: SessionDep, principal: AuthDep
    ) -> Any:
        return await api.render(session, ra, principal)

    # The tracking client updates its own experiment (log_tags, log_params, run_env).
    updater = by_itself if kind.self_update else writable

    async def update_run(
        ra: Annotated[RunAccess, updater],
        body: api.update_body,  # type: ignore[name-defined]  # the kind's own body
        session: SessionDep,
        principal: AuthDep,
    ) -> Any:
        changes = body.model_dump(exclude_unset=True, exclude={"merge"})
        await runs.update_run(session, ra.run, ra.kind, changes=changes, merge=body.merge)
        return await api.render(session, ra, principal)

    if kind.self_update:
        update_run = own_run(update_run)
    for method in ("PATCH", "PUT"):
        router.add_api_route(one, update_run, methods=[method], summary=f"Update {name}", **detail)

    @router.delete(one, summary=f"Delete {name}", dependencies=[WAKE], **NO_CONTENT)
    async def delete_run(ra: Annotated[RunAccess, writable], session: SessionDep) -> Response:
        await runs.delete_runs(session, ra.kind, [ra.run])
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(one + "/stop", summary=f"Stop {name}", response_model=Detail, dependencies=[WAKE])
    async def stop_run(ra: Annotated[RunAccess, writable], session: SessionDep) -> Detail:
        await runs.stop_run(session, ra.run)
        return STOPPING

    @router.get(
        one + "/statuses",
        summary="Status history, oldest first",
        response_model=Page[status_out],  # type: ignore[valid-type]
    )
    @own_run
    async def list_statuses(
        ra: Annotated[RunAccess, readable], session: SessionDep, params: ListDep
    ) -> Any:
        return Page.of(await runs.list_statuses(session, ra.run, params), status_out.from_row)

    @router.post(
        one + "/statuses", summary="Report a status", status_code=201, response_model=status_out
    )
    @own_run
    async def post_status(
        ra: Annotated[RunAccess, by_itself], body: StatusCreate, session: SessionDep
    ) -> Any:
        row = await runs.post_status(
            session, ra.run, status=body.status, message=body.message, traceback=body.traceback
        )
        return status_out.from_row(row)

    @router.get(one + "/logs", summary="The run's log", **LOG_ANSWER)
    @own_run
    async def get_logs(
        ra: Annotated[RunAccess, readable], settings: SettingsDep, tail: TailQuery = None
    ) -> StreamingResponse:
        return log_response(logs.read_run_log(settings, ra, tail=tail))

    @router.post(one + "/logs", summary="Append log lines", response_model=Detail)
    @own_run
    async def post_logs(
        ra: Annotated[RunAccess, by_itself],
        session: SessionDep,
        settings: SettingsDep,
        usage: LogUsageDep,
        body: Annotated[Any, Body()] = None,
    ) -> Detail:
        await logs.append_run_log(session, settings, usage, ra, body)
        return LOGGED

    @router.post(one + "/_heartbeat", summary="The run is alive", response_model=Detail)
    @own_run
    async def heartbeat(ra: Annotated[RunAccess, by_itself], session: SessionDep) -> Detail:
        await runs.heartbeat(session, ra.run)
        return ALIVE

    add_bookmark_routes(router, one, readable, bookmark_run, noun=article(kind), answer=Detail)


async def bookmark_run(session: AsyncSession, user: Any, ra: RunAccess, on: bool) -> None:
    await runs.set_run_bookmark(session, user, ra, on=on)
