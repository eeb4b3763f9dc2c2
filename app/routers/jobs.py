"""Job routes under /api/v1/{username}/{project}/jobs (builds reuse `make_router`): the routes
every run has (app.routers.runs), then list, create and the clones the kind offers.

No `from __future__ import annotations`: the handlers are built per kind (see app.routers.runs).
"""

from typing import Annotated, Any

from fastapi import APIRouter

from app.deps import WAKE, AuthDep, ListDep, ProjectRead, ProjectWrite, SessionDep, run_dependency
from app.kinds import JOB, Kind, RunKind
from app.routers.runs import CLONE_SUMMARIES, RunRoutes, add_run_routes, article
from app.schemas.common import Page
from app.schemas.jobs import (
    BuildDetailOut,
    BuildOut,
    JobCreate,
    JobDetailOut,
    JobOut,
    JobUpdate,
    RunOut,
)
from app.services import jobs as service
from app.services import runs
from app.services.runs import RunAccess
from app.services.users import Principal

SCHEMAS: dict[Kind, tuple[type[RunOut], type[RunOut]]] = {
    Kind.JOB: (JobOut, JobDetailOut),
    Kind.BUILD: (BuildOut, BuildDetailOut),
}


def make_router(kind: RunKind) -> APIRouter:
    router = APIRouter(prefix="/api/v1/{username}/{project}", tags=[kind.segment or ""])
    path = f"/{kind.segment}"
    row_out, detail_out = SCHEMAS[kind.kind]
    writable = run_dependency(kind, "write")

    async def render(session: SessionDep, ra: RunAccess, principal: Principal) -> Any:
        ctx = await runs.row_context(session, ra.project_unique, [ra.run], principal.user)
        return detail_out.from_row(ra.run, ctx, **await service.detail_counts(session, ra.run))

    @router.get(path, summary=f"List the project's {kind.segment}", response_model=Page[row_out])  # type: ignore[valid-type]
    async def list_runs(
        access: ProjectRead, session: SessionDep, principal: AuthDep, params: ListDep
    ) -> Any:
        found = await service.list_jobs(session, access, kind.kind, params)
        ctx = await runs.row_context(session, access.unique_name, found[1], principal.user)
        return Page.of(found, lambda row: row_out.from_row(row, ctx))

    @router.post(
        path,
        summary=f"Create {article(kind)}",
        status_code=201,
        response_model=detail_out,
        dependencies=[WAKE],
    )
    async def create_run(
        access: ProjectWrite, body: JobCreate, session: SessionDep, principal: AuthDep
    ) -> Any:
        row = await service.create_job(
            session, access, principal.user, kind=kind.kind, **body.model_dump()
        )
        return await render(session, RunAccess(access, row, kind.kind), principal)

    add_run_routes(router, kind, RunRoutes(detail_out, render, JobUpdate))

    def add_clone_route(strategy: str) -> None:
        @router.post(
            f"{path}/{{{kind.id_param}}}/{strategy}",
            summary=CLONE_SUMMARIES[strategy].format(kind.label),
            status_code=201,
            response_model=detail_out,
            dependencies=[WAKE],
        )
        async def clone(
            ra: Annotated[RunAccess, writable], session: SessionDep, principal: AuthDep
        ) -> Any:
            row = await service.clone_job(session, ra.access, principal.user, ra.run, strategy)
            return await render(session, RunAccess(ra.access, row, kind.kind), principal)

    for strategy in kind.clones:
        add_clone_route(strategy)
    return router


router = make_router(JOB)
