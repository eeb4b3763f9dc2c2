"""Experiment group routes (seed 001): CRUD, plan, stop, statuses, metrics, decisions, bookmarks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import AuthDep, ListDep, SessionDep, SettingsDep, UserAuthDep, wake_after_commit
from app.models import ExperimentGroup, User
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
)
from app.services import groups as service
from app.services import projects as projects_service
from app.services.projects import ProjectAccess
from app.services.users import Principal

router = APIRouter(prefix="/api/v1/{username}/{project}/groups", tags=["groups"])
CONTENT_TYPE = "experiment_group"


def _out(
    group: ExperimentGroup, access: ProjectAccess, user: str, *, bookmarked: bool
) -> dict[str, Any]:
    return {
        "id": group.id,
        "uuid": group.uuid,
        "name": group.name,
        "unique_name": f"{access.unique_name}.{group.id}",
        "user": user,
        "description": group.description,
        "last_status": group.last_status,
        "group_type": group.group_type,
        "project": access.unique_name,
        "created_at": group.created_at,
        "updated_at": group.updated_at,
        "started_at": group.started_at,
        "finished_at": group.finished_at,
        "tags": group.tags,
        "concurrency": group.concurrency,
        "search_algorithm": group.search_algorithm,
        "bookmarked": bookmarked,
    }


async def _creator(session: AsyncSession, group: ExperimentGroup, access: ProjectAccess) -> str:
    if group.user_id == access.owner.id:
        return access.owner.username
    user = await session.get(User, group.user_id)
    return user.username if user is not None else ""


async def _detail(
    session: AsyncSession, group: ExperimentGroup, access: ProjectAccess, principal: Principal
) -> GroupDetailOut:
    marked = await projects_service.bookmarked_ids(
        session, principal.user, CONTENT_TYPE, [group.id]
    )
    user = await _creator(session, group, access)
    return GroupDetailOut(
        **_out(group, access, user, bookmarked=group.id in marked),
        readme=group.readme,
        current_iteration=group.current_iteration,
        content=group.content,
        hptuning=group.hptuning,
        has_tensorboard=await service.has_tensorboard(session, group.id),
        **await service.experiment_counts(session, group.id),
    )


async def _group(
    session: AsyncSession,
    principal: Principal,
    username: str,
    project: str,
    group_id: RowId,
    *,
    write: bool = False,
) -> tuple[ProjectAccess, ExperimentGroup]:
    access = await projects_service.get_project(session, principal, username, project, write=write)
    return access, await service.get_group(session, access, group_id)


@router.get("", summary="List a project's experiment groups", response_model=Page[GroupOut])
async def list_groups(
    username: str, project: str, session: SessionDep, principal: AuthDep, params: ListDep
) -> Page[GroupOut]:
    access = await projects_service.get_project(session, principal, username, project)
    count, rows, next_url, prev_url = await service.list_groups(session, access, params)
    marked = await projects_service.bookmarked_ids(
        session, principal.user, CONTENT_TYPE, [g.id for g in rows]
    )
    results = []
    for group in rows:
        user = await _creator(session, group, access)
        results.append(GroupOut(**_out(group, access, user, bookmarked=group.id in marked)))
    return Page(count=count, next=next_url, previous=prev_url, results=results)


@router.post(
    "",
    summary="Create an experiment group from a polyaxonfile",
    response_model=GroupDetailOut,
    status_code=status.HTTP_201_CREATED,
)
async def create_group(
    username: str,
    project: str,
    body: GroupCreate,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    settings: SettingsDep,
) -> GroupDetailOut:
    access = await projects_service.get_project(session, principal, username, project, write=True)
    checked = service.check_group(body.content, max_experiments=settings.max_group_experiments)
    group = await service.create_group(
        session,
        access,
        principal.user,
        checked=checked,
        name=body.name,
        description=body.description,
        readme=body.readme,
        tags=body.tags,
    )
    wake_after_commit(session, request)
    return await _detail(session, group, access, principal)


@router.post(
    "/plan",
    summary="Plan a sweep without creating anything",
    response_model=SweepPlanOut,
)
async def plan_group(
    username: str,
    project: str,
    body: GroupCreate,
    session: SessionDep,
    principal: AuthDep,
    settings: SettingsDep,
) -> SweepPlanOut:
    await projects_service.get_project(session, principal, username, project)
    checked = service.check_group(body.content, max_experiments=settings.max_group_experiments)
    return SweepPlanOut(**service.plan_out(checked))


@router.get("/{group_id}", summary="Get an experiment group", response_model=GroupDetailOut)
async def get_group(
    username: str, project: str, group_id: RowId, session: SessionDep, principal: AuthDep
) -> GroupDetailOut:
    access, group = await _group(session, principal, username, project, group_id)
    return await _detail(session, group, access, principal)


async def _update(
    username: str,
    project: str,
    group_id: RowId,
    body: GroupUpdate,
    request: Request,
    session: AsyncSession,
    principal: Principal,
    max_experiments: int,
) -> GroupDetailOut:
    access, group = await _group(session, principal, username, project, group_id, write=True)
    await service.update_group(
        session,
        group,
        changes=body.model_dump(exclude_unset=True, exclude={"merge"}),
        merge=body.merge,
        max_experiments=max_experiments,
    )
    wake_after_commit(session, request)
    return await _detail(session, group, access, principal)


@router.patch("/{group_id}", summary="Update an experiment group", response_model=GroupDetailOut)
async def patch_group(
    username: str,
    project: str,
    group_id: RowId,
    body: GroupUpdate,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    settings: SettingsDep,
) -> GroupDetailOut:
    return await _update(
        username,
        project,
        group_id,
        body,
        request,
        session,
        principal,
        settings.max_group_experiments,
    )


@router.put("/{group_id}", summary="Update an experiment group", response_model=GroupDetailOut)
async def put_group(
    username: str,
    project: str,
    group_id: RowId,
    body: GroupUpdate,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    settings: SettingsDep,
) -> GroupDetailOut:
    return await _update(
        username,
        project,
        group_id,
        body,
        request,
        session,
        principal,
        settings.max_group_experiments,
    )


@router.delete(
    "/{group_id}",
    summary="Delete an experiment group and its experiments (stopped first)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def delete_group(
    username: str,
    project: str,
    group_id: RowId,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
) -> Response:
    _, group = await _group(session, principal, username, project, group_id, write=True)
    await service.delete_group(session, group)
    wake_after_commit(session, request)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{group_id}/stop", summary="Stop a group (pending experiments only, or all)")
async def stop_group(
    username: str,
    project: str,
    group_id: RowId,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    body: GroupStop | None = None,
) -> dict[str, str]:
    _, group = await _group(session, principal, username, project, group_id, write=True)
    pending = body.pending if body is not None else False
    await service.stop_group(
        session, group, pending_only=pending, message="Experiment group was stopped."
    )
    wake_after_commit(session, request)
    return {"detail": "Stopping."}


@router.get(
    "/{group_id}/statuses",
    summary="A group's status history",
    response_model=Page[GroupStatusOut],
)
async def list_statuses(
    username: str,
    project: str,
    group_id: RowId,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
) -> Page[GroupStatusOut]:
    _, group = await _group(session, principal, username, project, group_id)
    count, rows, next_url, prev_url = await service.list_statuses(session, group, params)
    results = [
        GroupStatusOut(
            id=r.id,
            uuid=r.uuid,
            created_at=r.created_at,
            message=r.message,
            traceback=r.traceback,
            status=r.status,
            experiment_group=r.experiment_group_id,
        )
        for r in rows
    ]
    return Page(count=count, next=next_url, previous=prev_url, results=results)


@router.get(
    "/{group_id}/decisions",
    summary="Why the sweep stopped experiments or itself: each decision with its inputs",
    response_model=Page[GroupDecisionOut],
)
async def list_decisions(
    username: str,
    project: str,
    group_id: RowId,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
) -> Page[GroupDecisionOut]:
    _, group = await _group(session, principal, username, project, group_id)
    count, rows, next_url, prev_url = await service.list_decisions(session, group, params)
    results = [
        GroupDecisionOut(
            id=r.id,
            experiment_group=r.experiment_group_id,
            kind=r.kind,
            reason=r.reason,
            experiment_ids=r.experiment_ids,
            inputs=r.inputs,
            created_at=r.created_at,
        )
        for r in rows
    ]
    return Page(count=count, next=next_url, previous=prev_url, results=results)


@router.get(
    "/{group_id}/metrics",
    summary="Metrics reported by the group's experiments",
    response_model=Page[GroupMetricOut],
)
async def list_metrics(
    username: str,
    project: str,
    group_id: RowId,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
) -> Page[GroupMetricOut]:
    _, group = await _group(session, principal, username, project, group_id)
    count, rows, next_url, prev_url = await service.list_metrics(session, group, params)
    results = [
        GroupMetricOut(
            id=r.id, experiment=r.experiment_id, created_at=r.created_at, values=r.values
        )
        for r in rows
    ]
    return Page(count=count, next=next_url, previous=prev_url, results=results)


@router.get("/{group_id}/experiments", summary="List a group's experiments")
async def list_group_experiments(
    username: str,
    project: str,
    group_id: RowId,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
    metrics: bool = False,
    declarations: bool = False,
) -> dict[str, Any]:
    await _group(session, principal, username, project, group_id)
    # The project's experiment list filtered by group: one shape for both routes.
    return await experiments_routes.list_experiments(
        username,
        project,
        session,
        principal,
        params,
        metrics=metrics,
        declarations=declarations,
        group=group_id,
        independent=False,
    )


@router.post(
    "/{group_id}/bookmark", summary="Bookmark a group", status_code=status.HTTP_201_CREATED
)
async def bookmark_group(
    username: str, project: str, group_id: RowId, session: SessionDep, principal: UserAuthDep
) -> dict[str, str]:
    _, group = await _group(session, principal, username, project, group_id)
    await projects_service.set_bookmark(session, principal.user, CONTENT_TYPE, group.id, on=True)
    return {"detail": "Bookmarked."}


@router.delete(
    "/{group_id}/unbookmark",
    summary="Remove a group bookmark",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def unbookmark_group(
    username: str, project: str, group_id: RowId, session: SessionDep, principal: UserAuthDep
) -> Response:
    _, group = await _group(session, principal, username, project, group_id)
    await projects_service.set_bookmark(session, principal.user, CONTENT_TYPE, group.id, on=False)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
