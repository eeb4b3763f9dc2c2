"""Job routes under /api/v1/{username}/{project}/jobs (builds reuse `make_router`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import StreamingResponse

from app.deps import (
    AuthDep,
    ListDep,
    LogUsageDep,
    SessionDep,
    SettingsDep,
    run_token_route,
    wake_after_commit,
)
from app.routers.logfiles import LOG_ANSWER, TailQuery, log_response
from app.schemas.common import Detail, Page, RowId
from app.schemas.jobs import BuildDetailOut, BuildOut, JobCreate, JobDetailOut, JobOut, JobUpdate
from app.schemas.statuses import JobStatusOut, StatusCreate
from app.services import jobs as service
from app.services import logs, runs
from app.services.projects import bookmarked_ids, get_project, set_bookmark


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


async def _out(session, kind: str, row, project_unique: str, principal, *, detail: bool) -> dict:
    page = await _page(session, kind, [row], project_unique, principal, detail=detail)
    if detail and kind == "build":
        page[0].update(await service.build_counts(session, row))
    return page[0]


async def _page(session, kind: str, rows, project_unique: str, principal, *, detail: bool) -> list:
    """Render rows with one query for their users and one for the caller's bookmarks."""
    names = await runs.usernames(session, (r.user_id for r in rows))
    marked = await bookmarked_ids(session, principal.user, kind, [r.id for r in rows])
    return [_row(kind, r, project_unique, names, marked, detail) for r in rows]


def _row(kind: str, row, project_unique: str, names, marked, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "uuid": row.uuid,
        "name": row.name,
        "unique_name": f"{project_unique}.{kind}s.{row.id}",
        "user": names.get(row.user_id),
        "description": row.description,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "last_status": row.last_status,
        "tags": row.tags,
        "project": project_unique,
        "bookmarked": row.id in marked,
    }
    if kind == "job":
        out["build_job"] = (
            f"{project_unique}.builds.{row.build_job_id}" if row.build_job_id else None
        )
    if detail:
        out.update(
            readme=row.readme,
            config=row.config,
            resources=row.resources,
            node_scheduled=row.node_scheduled,
        )
        if kind == "job":
            out.update(
                is_clone=row.original_id is not None,
                data_refs=row.data_refs,
                original=f"{project_unique}.jobs.{row.original_id}" if row.original_id else None,
            )
        else:
            out.update(dockerfile=row.dockerfile, commit=row.commit)
    return out


def make_router(kind: str) -> APIRouter:
    path = f"/{kind}s"
    router = APIRouter(prefix="/api/v1/{username}/{project}", tags=[f"{kind}s"])
    row_out, detail_out = (JobOut, JobDetailOut) if kind == "job" else (BuildOut, BuildDetailOut)

    async def _get(session, principal, username, project, run_id, **kw):
        return await runs.get_run(session, principal, username, project, kind, run_id, **kw)

    @router.get(path, summary=f"List the project's {kind}s", response_model=Page[row_out])
    async def list_runs(
        username: str, project: str, session: SessionDep, principal: AuthDep, params: ListDep
    ) -> dict[str, Any]:
        access = await get_project(session, principal, username, project)
        count, rows, nxt, prev = await service.list_jobs(session, access, kind, params)
        results = await _page(session, kind, rows, access.unique_name, principal, detail=False)
        return {"count": count, "next": nxt, "previous": prev, "results": results}

    @router.post(path, summary=f"Create a {kind}", status_code=201, response_model=detail_out)
    async def create_run(
        username: str,
        project: str,
        body: JobCreate,
        request: Request,
        session: SessionDep,
        principal: AuthDep,
    ) -> dict[str, Any]:
        access = await get_project(session, principal, username, project, write=True)
        row = await service.create_job(
            session,
            access,
            principal.user,
            kind=kind,
            config=body.config,
            name=body.name,
            description=body.description,
            tags=body.tags,
        )
        wake_after_commit(session, request)
        return await _out(session, kind, row, access.unique_name, principal, detail=True)

    @router.get(path + "/{run_id}", summary=f"Get a {kind}", response_model=detail_out)
    @run_token_route(kind, id_param="run_id")
    async def get_run(
        username: str, project: str, run_id: RowId, session: SessionDep, principal: AuthDep
    ) -> dict[str, Any]:
        ra = await _get(session, principal, username, project, run_id)
        return await _out(session, kind, ra.run, ra.project_unique, principal, detail=True)

    async def _update(username, project, run_id, body, session, principal):
        ra = await _get(session, principal, username, project, run_id, write=True)
        changes = body.model_dump(exclude_unset=True, exclude={"merge"})
        await service.update_run(session, ra.run, kind, changes=changes, merge=body.merge)
        return await _out(session, kind, ra.run, ra.project_unique, principal, detail=True)

    @router.patch(path + "/{run_id}", summary=f"Update a {kind}", response_model=detail_out)
    async def patch_run(
        username: str,
        project: str,
        run_id: RowId,
        body: JobUpdate,
        session: SessionDep,
        principal: AuthDep,
    ) -> dict[str, Any]:
        return await _update(username, project, run_id, body, session, principal)

    @router.put(path + "/{run_id}", summary=f"Update a {kind}", response_model=detail_out)
    async def put_run(
        username: str,
        project: str,
        run_id: RowId,
        body: JobUpdate,
        session: SessionDep,
        principal: AuthDep,
    ) -> dict[str, Any]:
        return await _update(username, project, run_id, body, session, principal)

    @router.delete(
        path + "/{run_id}", summary=f"Delete a {kind}", status_code=204, response_class=Response
    )
    async def delete_run(
        username: str,
        project: str,
        run_id: RowId,
        request: Request,
        session: SessionDep,
        principal: AuthDep,
    ) -> Response:
        ra = await _get(session, principal, username, project, run_id, write=True)
        await runs.delete_runs(session, kind, [ra.run])
        wake_after_commit(session, request)
        return Response(status_code=204)

    @router.post(path + "/{run_id}/stop", summary=f"Stop a {kind}", response_model=Detail)
    async def stop(
        username: str,
        project: str,
        run_id: RowId,
        request: Request,
        session: SessionDep,
        principal: AuthDep,
    ) -> dict[str, str]:
        ra = await _get(session, principal, username, project, run_id, write=True)
        await service.stop_run(session, ra.run, message="Stopped on request.")
        wake_after_commit(session, request)
        return {"detail": "Stopping."}

    @router.get(
        path + "/{run_id}/statuses",
        summary="Status history, oldest first",
        response_model=Page[JobStatusOut],
    )
    @run_token_route(kind, id_param="run_id")
    async def list_statuses(
        username: str,
        project: str,
        run_id: RowId,
        session: SessionDep,
        principal: AuthDep,
        params: ListDep,
    ) -> dict[str, Any]:
        ra = await _get(session, principal, username, project, run_id)
        count, rows, nxt, prev = await runs.list_statuses(session, ra.run, params)
        results = [runs.status_out(r, "job") for r in rows]
        return {"count": count, "next": nxt, "previous": prev, "results": results}

    @router.post(
        path + "/{run_id}/statuses",
        summary="Report a status",
        status_code=201,
        response_model=JobStatusOut,
    )
    @run_token_route(kind, id_param="run_id")
    async def post_status(
        username: str,
        project: str,
        run_id: RowId,
        body: StatusCreate,
        session: SessionDep,
        principal: AuthDep,
    ) -> dict[str, Any]:
        ra = await _get(session, principal, username, project, run_id, run_write=True)
        row = await runs.post_status(
            session, ra.run, status=body.status, message=body.message, traceback=body.traceback
        )
        return runs.status_out(row, "job")

    @router.get(path + "/{run_id}/logs", summary="The run's log", **LOG_ANSWER)
    @run_token_route(kind, id_param="run_id")
    async def get_logs(
        username: str,
        project: str,
        run_id: RowId,
        session: SessionDep,
        settings: SettingsDep,
        principal: AuthDep,
        tail: TailQuery = None,
    ) -> StreamingResponse:
        await _get(session, principal, username, project, run_id)
        return log_response(logs.open_log(settings, kind, run_id, tail=tail))

    @router.post(path + "/{run_id}/logs", summary="Append log lines", response_model=Detail)
    @run_token_route(kind, id_param="run_id")
    async def post_logs(
        username: str,
        project: str,
        run_id: RowId,
        session: SessionDep,
        settings: SettingsDep,
        principal: AuthDep,
        usage: LogUsageDep,
        body: Annotated[Any, Body()] = None,
    ) -> dict[str, str]:
        ra = await _get(session, principal, username, project, run_id, run_write=True)
        owner_id = ra.access.project.user_id
        await logs.append_log(
            session, settings, usage, kind=kind, run_id=run_id, owner_id=owner_id, body=body
        )
        return {"detail": "Logged."}

    @router.post(path + "/{run_id}/_heartbeat", summary="The run is alive", response_model=Detail)
    @run_token_route(kind, id_param="run_id")
    async def heartbeat(
        username: str, project: str, run_id: RowId, session: SessionDep, principal: AuthDep
    ) -> dict[str, str]:
        await _get(session, principal, username, project, run_id, run_write=True)
        return {"detail": "ok"}

    @router.post(
        path + "/{run_id}/bookmark", summary="Bookmark", status_code=201, response_model=Detail
    )
    async def bookmark(
        username: str, project: str, run_id: RowId, session: SessionDep, principal: AuthDep
    ) -> dict[str, str]:
        ra = await _get(session, principal, username, project, run_id)
        await set_bookmark(session, principal.user, kind, ra.run.id, on=True)
        return {"detail": "Bookmarked."}

    @router.delete(
        path + "/{run_id}/unbookmark",
        summary="Remove a bookmark",
        status_code=204,
        response_class=Response,
    )
    async def unbookmark(
        username: str, project: str, run_id: RowId, session: SessionDep, principal: AuthDep
    ) -> Response:
        ra = await _get(session, principal, username, project, run_id)
        await set_bookmark(session, principal.user, kind, ra.run.id, on=False)
        return Response(status_code=204)

    if kind == "job":

        @router.post(
            path + "/{run_id}/restart",
            summary="Restart as a new job",
            status_code=201,
            response_model=JobDetailOut,
        )
        async def restart(
            username: str,
            project: str,
            run_id: RowId,
            request: Request,
            session: SessionDep,
            principal: AuthDep,
        ) -> dict[str, Any]:
            ra = await _get(session, principal, username, project, run_id, write=True)
            row = await service.create_job(
                session,
                ra.access,
                principal.user,
                kind="job",
                config=ra.run.config,
                description=ra.run.description,
                tags=ra.run.tags,
                original=ra.run,
                cloning_strategy="restart",
            )
            wake_after_commit(session, request)
            return await _out(session, kind, row, ra.project_unique, principal, detail=True)

    return router


router = make_router("job")
