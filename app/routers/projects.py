from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.deps import AuthDep, ListDep, SessionDep, SettingsDep, UserAuthDep
from app.errors import BadRequest
from app.models import Project, User
from app.schemas.common import Page
from app.schemas.projects import (
    ProjectCreate,
    ProjectDetailOut,
    ProjectOut,
    ProjectUpdate,
)
from app.services import projects as service
from app.services.users import get_user_or_404

router = APIRouter(prefix="/api/v1", tags=["projects"])


def _out(project: Project, owner: User, *, bookmarked: bool) -> dict:
    return {
        "id": project.id,
        "uuid": project.uuid,
        "user": owner.username,
        "name": project.name,
        "unique_name": f"{owner.username}.{project.name}",
        "description": project.description,
        "tags": project.tags,
        "created_at": project.created_at,
        "updated_at": project.updated_at,
        "is_public": project.is_public,
        "bookmarked": bookmarked,
    }


async def _detail(session, access, principal, *, new: bool = False) -> ProjectDetailOut:
    project = access.project
    if new:
        counters = service.new_project_counters(project)
    else:
        counters = await service.project_counters(session, project, principal.user.id)
    return ProjectDetailOut(
        **_out(project, access.owner, bookmarked=counters.pop("bookmarked")),
        readme=project.readme,
        **counters,
    )


@router.post(
    "/projects",
    summary="Create a project owned by the caller",
    response_model=ProjectDetailOut,
    status_code=status.HTTP_201_CREATED,
)
async def create_project(
    body: ProjectCreate, session: SessionDep, principal: UserAuthDep, settings: SettingsDep
) -> ProjectDetailOut:
    project = await service.create_project(
        session,
        principal,
        data=body.model_dump(),
        default_public=settings.default_project_visibility == "public",
    )
    access = service.ProjectAccess(project=project, owner=principal.user, can_write=True)
    return await _detail(session, access, principal, new=True)


@router.get("/{username}", summary="List a user's projects", response_model=Page[ProjectOut])
async def list_projects(
    username: str, session: SessionDep, principal: AuthDep, params: ListDep
) -> Page[ProjectOut]:
    owner = await get_user_or_404(session, username)
    count, rows, next_url, prev_url = await service.list_projects(session, principal, owner, params)
    marked = await service.bookmarked_ids(session, principal.user, "project", [p.id for p in rows])
    results = [ProjectOut(**_out(p, owner, bookmarked=p.id in marked)) for p in rows]
    return Page(count=count, next=next_url, previous=prev_url, results=results)


@router.get("/{username}/{project}", summary="Get a project", response_model=ProjectDetailOut)
async def get_project(
    username: str, project: str, session: SessionDep, principal: AuthDep
) -> ProjectDetailOut:
    access = await service.get_project(session, principal, username, project)
    return await _detail(session, access, principal)


async def _update(
    username: str,
    project: str,
    body: ProjectUpdate,
    session,
    principal,
) -> ProjectDetailOut:
    access = await service.get_project(session, principal, username, project, write=True)
    changes = body.model_dump(exclude_unset=True, exclude={"merge"})
    for required in ("name", "is_public"):
        if required in changes and changes[required] is None:
            raise BadRequest(f"{required}: may not be null")
    await service.update_project(session, access, changes=changes, merge=body.merge)
    return await _detail(session, access, principal)


@router.patch(
    "/{username}/{project}",
    summary="Update some fields of a project",
    response_model=ProjectDetailOut,
)
async def patch_project(
    username: str, project: str, body: ProjectUpdate, session: SessionDep, principal: AuthDep
) -> ProjectDetailOut:
    return await _update(username, project, body, session, principal)


@router.put("/{username}/{project}", summary="Update a project", response_model=ProjectDetailOut)
async def put_project(
    username: str, project: str, body: ProjectUpdate, session: SessionDep, principal: AuthDep
) -> ProjectDetailOut:
    return await _update(username, project, body, session, principal)


@router.delete(
    "/{username}/{project}",
    summary="Delete a project, its runs (stopped first) and its code",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def delete_project(
    username: str, project: str, session: SessionDep, principal: AuthDep
) -> Response:
    access = await service.get_project(session, principal, username, project, write=True)
    await service.delete_project(session, access)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{username}/{project}/bookmark",
    summary="Bookmark a project",
    status_code=status.HTTP_201_CREATED,
)
async def bookmark_project(
    username: str, project: str, session: SessionDep, principal: UserAuthDep
) -> dict[str, str]:
    access = await service.get_project(session, principal, username, project)
    await service.set_bookmark(session, principal.user, "project", access.project.id, on=True)
    return {"detail": "Bookmarked."}


@router.delete(
    "/{username}/{project}/unbookmark",
    summary="Remove a project bookmark",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def unbookmark_project(
    username: str, project: str, session: SessionDep, principal: UserAuthDep
) -> Response:
    access = await service.get_project(session, principal, username, project)
    await service.set_bookmark(session, principal.user, "project", access.project.id, on=False)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
