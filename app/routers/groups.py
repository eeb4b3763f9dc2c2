"""Experiment group routes (seed 001): CRUD, plan, stop, statuses, metrics, decisions, bookmarks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from app.deps import (
    AuthDep,
    ListDep,
    ProjectRead,
    ProjectWrite,
    read_project,
    SessionDep,
    SettingsDep,
    UserAuthDep,
    wake_after_commit,
)
from app.routers import experiments as experiments_routes
from app.schemas.common import Page, RowId
from app.schemas.groups import (
    GroupCreate,
    GroupDecisionOut,
    GroupDetailOut,
    GroupMetricOut,
    GroupOut,
    GroupStatusOut,
    GroupStop,
    GroupUpdate,
    SweepPlanOut,
    page_of,
)
from app.services import groups as service
from app.services.groups import ProjectGroup

router = APIRouter(prefix="/api/v1/{username}/{project}/groups", tags=["groups"])
ONE = "/{group_id}"
NO_CONTENT = status.HTTP_204_NO_CONTENT
STOP_MESSAGE = "Experiment group was stopped."


async def read_group(access: ProjectRead, group_id: RowId, session: SessionDep) -> ProjectGroup:
    """The group of the path in a project the caller may read (404 otherwise)."""
    return ProjectGroup(access, await service.get_group(session, access, group_id))


async def write_group(access: ProjectWrite, group_id: RowId, session: SessionDep) -> ProjectGroup:
    """The group of the path in a project the caller may write (404 unseen, 403 read-only)."""
    return ProjectGroup(access, await service.get_group(session, access, group_id))


GroupRead = Annotated[ProjectGroup, Depends(read_group)]
GroupWrite = Annotated[ProjectGroup, Depends(write_group)]


async def _detail(session: SessionDep, group: ProjectGroup, principal: AuthDep) -> GroupDetailOut:
    facts = await service.describe_group_detail(session, group, principal.user)
    return GroupDetailOut.from_row(group.row, facts)


@router.get("", summary="List a project's experiment groups", response_model=Page[GroupOut])
async def list_groups(
    access: ProjectRead, session: SessionDep, principal: AuthDep, params: ListDep
) -> Page[GroupOut]:
    listed = await service.list_groups(session, access, principal.user, params)
    return page_of(listed, lambda pair: GroupOut.from_row(*pair))


@router.post(
    "",
    summary="Create an experiment group from a polyaxonfile",
    response_model=GroupDetailOut,
    status_code=status.HTTP_201_CREATED,
)
async def create_group(
    access: ProjectWrite,
    body: GroupCreate,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    settings: SettingsDep,
) -> GroupDetailOut:
    checked = service.check_group(body.content, max_experiments=settings.max_group_experiments)
    fields = body.model_dump(include={"name", "description", "readme", "tags"})
    row = await service.create_group(session, access, principal.user, checked=checked, **fields)
    wake_after_commit(session, request)
    return await _detail(session, ProjectGroup(access, row), principal)


@router.post(
    "/plan",
    summary="Plan a sweep without creating anything",
    response_model=SweepPlanOut,
    dependencies=[Depends(read_project)],
)
async def plan_group(body: GroupCreate, settings: SettingsDep) -> SweepPlanOut:
    checked = service.check_group(body.content, max_experiments=settings.max_group_experiments)
    return SweepPlanOut.from_plan(checked.plan, concurrency=checked.hptuning.concurrency)


@router.get(ONE, summary="Get an experiment group", response_model=GroupDetailOut)
async def get_group(group: GroupRead, session: SessionDep, principal: AuthDep) -> GroupDetailOut:
    return await _detail(session, group, principal)


@router.put(ONE, summary="Update an experiment group", response_model=GroupDetailOut)
@router.patch(ONE, summary="Update an experiment group", response_model=GroupDetailOut)
async def update_group(
    group: GroupWrite,
    body: GroupUpdate,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    settings: SettingsDep,
) -> GroupDetailOut:
    changes = body.model_dump(exclude_unset=True, exclude={"merge"})
    await service.update_group(
        session,
        group.row,
        changes=changes,
        merge=body.merge,
        max_experiments=settings.max_group_experiments,
    )
    wake_after_commit(session, request)
    return await _detail(session, group, principal)


@router.delete(
    ONE,
    summary="Delete an experiment group and its experiments (stopped first)",
    status_code=NO_CONTENT,
    response_class=Response,
)
async def delete_group(group: GroupWrite, request: Request, session: SessionDep) -> None:
    await service.delete_group(session, group.row)
    wake_after_commit(session, request)


@router.post(
    ONE + "/stop",
    summary="Stop a group (pending experiments only, or all)",
)
async def stop_group(
    group: GroupWrite, request: Request, session: SessionDep, body: GroupStop | None = None
) -> dict[str, str]:
    pending = body.pending if body is not None else False
    await service.stop_group(session, group.row, pending_only=pending, message=STOP_MESSAGE)
    wake_after_commit(session, request)
    return {"detail": "Stopping."}


@router.get(
    ONE + "/statuses", summary="A group's status history", response_model=Page[GroupStatusOut]
)
async def list_statuses(
    group: GroupRead, session: SessionDep, params: ListDep
) -> Page[GroupStatusOut]:
    listed = await service.list_statuses(session, group.row, params)
    return page_of(listed, GroupStatusOut.model_validate)


@router.get(
    ONE + "/decisions",
    summary="Why the sweep stopped experiments or itself: each decision with its inputs",
    response_model=Page[GroupDecisionOut],
)
async def list_decisions(
    group: GroupRead, session: SessionDep, params: ListDep
) -> Page[GroupDecisionOut]:
    listed = await service.list_decisions(session, group.row, params)
    return page_of(listed, GroupDecisionOut.model_validate)


@router.get(
    ONE + "/metrics",
    summary="Metrics reported by the group's experiments",
    response_model=Page[GroupMetricOut],
)
async def list_metrics(
    group: GroupRead, session: SessionDep, params: ListDep
) -> Page[GroupMetricOut]:
    listed = await service.list_metrics(session, group.row, params)
    return page_of(listed, GroupMetricOut.model_validate)


@router.get(ONE + "/experiments", summary="List a group's experiments")
async def list_group_experiments(
    group: GroupRead,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
    metrics: bool = False,
    declarations: bool = False,
) -> dict[str, Any]:
    # The project's experiment list filtered by group: one shape for both routes.
    access = group.access
    return await experiments_routes.list_experiments(
        access.owner.username,
        access.project.name,
        session,
        principal,
        params,
        metrics=metrics,
        declarations=declarations,
        group=group.row.id,
        independent=False,
    )


@router.post(
    ONE + "/bookmark",
    summary="Bookmark a group",
    status_code=status.HTTP_201_CREATED,
)
async def bookmark_group(
    principal: UserAuthDep, group: GroupRead, session: SessionDep
) -> dict[str, str]:
    await service.bookmark_group(session, principal.user, group.row.id, on=True)
    return {"detail": "Bookmarked."}


@router.delete(
    ONE + "/unbookmark",
    summary="Remove a group bookmark",
    status_code=NO_CONTENT,
    response_class=Response,
)
async def unbookmark_group(principal: UserAuthDep, group: GroupRead, session: SessionDep) -> None:
    await service.bookmark_group(session, principal.user, group.row.id, on=False)
