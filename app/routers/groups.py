"""Experiment group routes (seed 001): CRUD, plan, stop, statuses, metrics, decisions, bookmarks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel

from app.deps import (
    AuthDep,
    ListDep,
    ProjectRead,
    ProjectWrite,
    SessionDep,
    SettingsDep,
    read_project,
    wake_after_commit,
)
from app.routers.bookmarks import add_bookmark_routes
from app.schemas import groups as schemas
from app.schemas.common import Page, RowId
from app.schemas.experiments import ExperimentFilters
from app.services import groups as service
from app.services.experiments import experiment_page
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


async def max_group_experiments(settings: SettingsDep) -> int:
    return settings.max_group_experiments


async def wake_reconciler(request: Request, session: SessionDep) -> None:
    """The reconciler takes a pass once this request's writes are committed (not on a failure)."""
    wake_after_commit(session, request)


GroupRead = Annotated[ProjectGroup, Depends(read_group)]
GroupWrite = Annotated[ProjectGroup, Depends(write_group)]
MaxExperiments = Annotated[int, Depends(max_group_experiments)]
WAKES = [Depends(wake_reconciler)]


async def _detail(
    session: SessionDep, group: ProjectGroup, principal: AuthDep
) -> schemas.GroupDetailOut:
    facts = await service.describe_group_detail(session, group, principal.user)
    return schemas.GroupDetailOut.from_row(group.row, facts)


@router.get("", summary="List a project's experiment groups")
async def list_groups(
    access: ProjectRead, session: SessionDep, principal: AuthDep, params: ListDep
) -> Page[schemas.GroupOut]:
    listed = await service.list_groups(session, access, principal.user, params)
    return schemas.page_of(listed, lambda pair: schemas.GroupOut.from_row(*pair))


@router.post(
    "",
    summary="Create an experiment group from a polyaxonfile",
    status_code=201,
    dependencies=WAKES,
)
async def create_group(
    access: ProjectWrite,
    body: schemas.GroupCreate,
    session: SessionDep,
    principal: AuthDep,
    limit: MaxExperiments,
) -> schemas.GroupDetailOut:
    row = await service.create_group(session, access, principal.user, body, max_experiments=limit)
    return await _detail(session, ProjectGroup(access, row), principal)


@router.post(
    "/plan",
    summary="Plan a sweep without creating anything",
    dependencies=[Depends(read_project)],  # only callers who may read the project
)
async def plan_group(body: schemas.GroupCreate, limit: MaxExperiments) -> schemas.SweepPlanOut:
    checked = service.check_group(body.content, max_experiments=limit)
    return schemas.SweepPlanOut.from_plan(checked.plan, concurrency=checked.hptuning.concurrency)


@router.get(ONE, summary="Get an experiment group")
async def get_group(
    group: GroupRead, session: SessionDep, principal: AuthDep
) -> schemas.GroupDetailOut:
    return await _detail(session, group, principal)


@router.put(ONE, summary="Update an experiment group", dependencies=WAKES)
@router.patch(ONE, summary="Update an experiment group", dependencies=WAKES)
async def update_group(
    group: GroupWrite,
    body: schemas.GroupUpdate,
    session: SessionDep,
    principal: AuthDep,
    limit: MaxExperiments,
) -> schemas.GroupDetailOut:
    await service.update_group(session, group.row, body, max_experiments=limit)
    return await _detail(session, group, principal)


@router.delete(
    ONE,
    summary="Delete an experiment group and its experiments (stopped first)",
    status_code=NO_CONTENT,
    response_class=Response,
    dependencies=WAKES,
)
async def delete_group(group: GroupWrite, session: SessionDep) -> None:
    await service.delete_group(session, group.row)


@router.post(
    ONE + "/stop", summary="Stop a group (pending experiments only, or all)", dependencies=WAKES
)
async def stop_group(
    group: GroupWrite, session: SessionDep, body: schemas.GroupStop | None = None
) -> dict[str, str]:
    pending_only = body is not None and body.pending
    await service.stop_group(session, group.row, pending_only=pending_only, message=STOP_MESSAGE)
    return {"detail": "Stopping."}


def _group_list(path: str, summary: str, rows: Any, out: type[BaseModel]) -> None:
    """A paged list of rows belonging to the group, oldest first."""

    @router.get(ONE + path, summary=summary, response_model=Page[out])  # type: ignore[valid-type]
    async def list_rows(group: GroupRead, session: SessionDep, params: ListDep) -> Page[Any]:
        return schemas.page_of(await rows(session, group.row, params), out.model_validate)


_group_list("/statuses", "A group's status history", service.list_statuses, schemas.GroupStatusOut)
_group_list(
    "/decisions",
    "Why the sweep stopped experiments or itself: each decision with its inputs",
    service.list_decisions,
    schemas.GroupDecisionOut,
)
_group_list(
    "/metrics",
    "Metrics reported by the group's experiments",
    service.list_metrics,
    schemas.GroupMetricOut,
)


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
    filters = ExperimentFilters(
        metrics=metrics, declarations=declarations, group=group.row.id, independent=False
    )
    page = await experiment_page(session, group.access, principal.user, params, filters)
    return page.model_dump(mode="json", exclude_unset=True)


async def _mark(session: SessionDep, user: Any, group: ProjectGroup, on: bool) -> None:
    await service.bookmark_group(session, user, group.row.id, on=on)


add_bookmark_routes(router, ONE, Depends(read_group), _mark, noun="a group", answer=dict[str, str])
