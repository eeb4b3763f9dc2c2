"""Project routes: create, list a user's, get, update, delete, bookmark."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response, status

from app import deps
from app.routers.bookmarks import NO_CONTENT, add_bookmark_routes
from app.schemas.common import Page
from app.schemas.projects import ProjectCreate, ProjectDetailOut, ProjectOut, ProjectUpdate
from app.services import projects as service
from app.services.projects import ProjectAccess
from app.services.users import Principal, get_user_or_404

router = APIRouter(prefix="/api/v1", tags=["projects"])
ONE = "/{username}/{project}"


def _detail(access: ProjectAccess, counters: dict[str, Any]) -> ProjectDetailOut:
    project = access.project
    return ProjectDetailOut.from_row(project, access.owner, readme=project.readme, **counters)


async def _read_detail(session: deps.SessionDep, access: ProjectAccess, viewer: Principal) -> Any:
    return _detail(access, await service.project_counters(session, access.project, viewer.user.id))


@router.post(
    "/projects",
    summary="Create a project owned by the caller",
    response_model=ProjectDetailOut,
    status_code=status.HTTP_201_CREATED,
)
async def create_project(
    body: ProjectCreate,
    session: deps.SessionDep,
    principal: deps.UserAuthDep,
    settings: deps.SettingsDep,
) -> ProjectDetailOut:
    access = await service.create_project(
        session,
        principal,
        data=body.model_dump(),
        default_public=settings.default_project_visibility == "public",
    )
    return _detail(access, service.new_project_counters(access.project))


@router.get("/{username}", summary="List a user's projects", response_model=Page[ProjectOut])
async def list_projects(
    username: str, session: deps.SessionDep, principal: deps.AuthDep, params: deps.ListDep
) -> Any:
    owner = await get_user_or_404(session, username)
    found, marked = await service.list_projects(session, principal, owner, params)
    return Page.of(found, lambda p: ProjectOut.from_row(p, owner, bookmarked=p.id in marked))


@router.get(ONE, summary="Get a project", response_model=ProjectDetailOut)
async def get_project(
    access: deps.ProjectRead, session: deps.SessionDep, principal: deps.AuthDep
) -> Any:
    return await _read_detail(session, access, principal)


async def update_project(
    access: deps.ProjectWrite,
    body: ProjectUpdate,
    session: deps.SessionDep,
    principal: deps.AuthDep,
) -> Any:
    changes = body.model_dump(exclude_unset=True, exclude={"merge"})
    await service.update_project(session, access, changes=changes, merge=body.merge)
    return await _read_detail(session, access, principal)


for method, summary in (("PATCH", "Update some fields of a project"), ("PUT", "Update a project")):
    router.add_api_route(
        ONE, update_project, methods=[method], summary=summary, response_model=ProjectDetailOut
    )


@router.delete(ONE, summary="Delete a project, its runs (stopped first) and its code", **NO_CONTENT)
async def delete_project(access: deps.ProjectWrite, session: deps.SessionDep) -> Response:
    await service.delete_project(session, access)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _mark(session: deps.SessionDep, user: Any, access: ProjectAccess, on: bool) -> None:
    await service.set_project_bookmark(session, user, access, on=on)


add_bookmark_routes(
    router, ONE, Depends(deps.read_project), _mark, noun="a project", answer=dict[str, str]
)
