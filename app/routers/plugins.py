"""Tensorboards (project, group, experiment) and the project notebook: start, stop, list, and the
upload of a stopped notebook's workspace by its pod (Kubernetes)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.deps import (
    AuthDep,
    ListDep,
    SessionDep,
    SettingsDep,
    UserAuthDep,
    run_token_route,
    wake_after_commit,
)
from app.errors import PlxError
from app.models import NotebookJob, TensorboardJob
from app.routers.code import REPO_ARCHIVE_BODY
from app.schemas.code import CodeReferenceOut
from app.schemas.common import Page, RowId
from app.schemas.plugins import NotebookOut, NotebookStop, PluginStart, TensorboardOut
from app.services import code as code_service
from app.services import plugin_proxy
from app.services import plugins as service
from app.services.projects import ProjectAccess, get_project

router = APIRouter(prefix="/api/v1", tags=["plugins"])
PROJECT = "/{username}/{project}"


def _common(
    row: TensorboardJob | NotebookJob,
    access: ProjectAccess,
    kind: str,
    links: plugin_proxy.Links | None,
) -> dict:
    # The workload's own address (row.url) stays internal: callers get the proxy's, with a
    # ticket for their browser (app/routers/plugin_proxy.py).
    live = service.is_live(row) and row.url and links is not None
    return {
        "id": row.id,
        "uuid": row.uuid,
        "name": row.name,
        "unique_name": f"{access.unique_name}.{kind}.{row.id}",
        "user": access.owner.username,
        "description": row.description,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "last_status": row.last_status,
        "tags": row.tags,
        "project": access.unique_name,
        "url": links.url(plugin_proxy.row_prefix(row, access)) if live else None,
    }


def _tensorboard_out(
    row: TensorboardJob, access: ProjectAccess, links: plugin_proxy.Links | None = None
) -> TensorboardOut:
    return TensorboardOut(
        **_common(row, access, "tensorboards", links),
        experiment_group=row.experiment_group_id,
        experiment=row.experiment_id,
    )


def _notebook_out(
    row: NotebookJob,
    access: ProjectAccess,
    commit: str | None = None,
    links: plugin_proxy.Links | None = None,
    message: str | None = None,
) -> NotebookOut:
    # A notebook is a shell on its workload: only those who may write the project get its URL.
    out = _common(row, access, "notebooks", links if access.can_write else None)
    return NotebookOut(**out, commit=commit, message=message)


async def _start_tensorboard(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: UserAuthDep,
    access: ProjectAccess,
    target: service.Target,
    body: PluginStart | None,
) -> TensorboardOut:
    row, created = await service.start_tensorboard(
        session, access, principal.user.id, target=target, config=body.config if body else None
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    wake_after_commit(session, request)
    return _tensorboard_out(row, access, plugin_proxy.links_for(request, principal))


async def _stop_tensorboard(
    request: Request, session: SessionDep, access: ProjectAccess, target: service.Target
) -> TensorboardOut | None:
    row = await service.stop_tensorboard(session, access, target=target)
    wake_after_commit(session, request)
    return _tensorboard_out(row, access) if row else None


@router.post(
    PROJECT + "/tensorboard/start",
    summary="Start the project's tensorboard (201; 200 with the same when already running)",
    response_model=TensorboardOut,
    status_code=status.HTTP_201_CREATED,
)
async def start_project_tensorboard(
    username: str,
    project: str,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: UserAuthDep,
    body: PluginStart | None = None,
) -> TensorboardOut:
    access = await get_project(session, principal, username, project, write=True)
    return await _start_tensorboard(
        request, response, session, principal, access, service.Target(), body
    )


@router.post(
    PROJECT + "/tensorboard/stop",
    summary="Stop the project's tensorboard",
    response_model=TensorboardOut | None,
)
async def stop_project_tensorboard(
    username: str, project: str, request: Request, session: SessionDep, principal: UserAuthDep
) -> TensorboardOut | None:
    access = await get_project(session, principal, username, project, write=True)
    return await _stop_tensorboard(request, session, access, service.Target())


@router.post(
    PROJECT + "/groups/{group_id}/tensorboard/start",
    summary="Start a group's tensorboard (201; 200 with the same when already running)",
    response_model=TensorboardOut,
    status_code=status.HTTP_201_CREATED,
)
async def start_group_tensorboard(
    username: str,
    project: str,
    group_id: RowId,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: UserAuthDep,
    body: PluginStart | None = None,
) -> TensorboardOut:
    access = await get_project(session, principal, username, project, write=True)
    target = service.Target(group=await service.get_group(session, access, group_id))
    return await _start_tensorboard(request, response, session, principal, access, target, body)


@router.post(
    PROJECT + "/groups/{group_id}/tensorboard/stop",
    summary="Stop a group's tensorboard",
    response_model=TensorboardOut | None,
)
async def stop_group_tensorboard(
    username: str,
    project: str,
    group_id: RowId,
    request: Request,
    session: SessionDep,
    principal: UserAuthDep,
) -> TensorboardOut | None:
    access = await get_project(session, principal, username, project, write=True)
    target = service.Target(group=await service.get_group(session, access, group_id))
    return await _stop_tensorboard(request, session, access, target)


@router.post(
    PROJECT + "/experiments/{experiment_id}/tensorboard/start",
    summary="Start an experiment's tensorboard (201; 200 with the same when already running)",
    response_model=TensorboardOut,
    status_code=status.HTTP_201_CREATED,
)
async def start_experiment_tensorboard(
    username: str,
    project: str,
    experiment_id: RowId,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: UserAuthDep,
    body: PluginStart | None = None,
) -> TensorboardOut:
    access = await get_project(session, principal, username, project, write=True)
    target = service.Target(experiment=await service.get_experiment(session, access, experiment_id))
    return await _start_tensorboard(request, response, session, principal, access, target, body)


@router.post(
    PROJECT + "/experiments/{experiment_id}/tensorboard/stop",
    summary="Stop an experiment's tensorboard",
    response_model=TensorboardOut | None,
)
async def stop_experiment_tensorboard(
    username: str,
    project: str,
    experiment_id: RowId,
    request: Request,
    session: SessionDep,
    principal: UserAuthDep,
) -> TensorboardOut | None:
    access = await get_project(session, principal, username, project, write=True)
    target = service.Target(experiment=await service.get_experiment(session, access, experiment_id))
    return await _stop_tensorboard(request, session, access, target)


@router.get(
    PROJECT + "/tensorboards",
    summary="List the project's tensorboards (project, group and experiment ones)",
    response_model=Page[TensorboardOut],
)
async def list_tensorboards(
    username: str,
    project: str,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
) -> Page[TensorboardOut]:
    access = await get_project(session, principal, username, project)
    count, rows, next_url, prev_url = await service.list_tensorboards(session, access, params)
    links = plugin_proxy.links_for(request, principal)
    results = [_tensorboard_out(row, access, links) for row in rows]
    return Page(count=count, next=next_url, previous=prev_url, results=results)


@router.post(
    PROJECT + "/notebook/start",
    summary="Start the project's notebook (201; 200 with the same when already running)",
    response_model=NotebookOut,
    status_code=status.HTTP_201_CREATED,
)
async def start_notebook(
    username: str,
    project: str,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: UserAuthDep,
    body: PluginStart | None = None,
) -> NotebookOut:
    access = await get_project(session, principal, username, project, write=True)
    row, created = await service.start_notebook(
        session, access, principal.user.id, config=body.config if body else None
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    wake_after_commit(session, request)
    return _notebook_out(row, access, links=plugin_proxy.links_for(request, principal))


@router.post(
    PROJECT + "/notebook/stop",
    summary="Stop the project's notebook; `commit` (default true) saves its work as a new version",
    description=(
        "With `commit`, the notebook's working copy becomes a new code version. On the local "
        "runtime it is taken before answering (`commit` in the answer). On Kubernetes the work "
        "lives in the notebook's pod: its preStop hook uploads it while the pod is deleted, so "
        "the new version appears in `GET .../repo` shortly after this answer (`commit` null). "
        "The stop never fails for the work's sake: an empty or unchanged workspace stores no "
        "version, and a failure to save it is told in `message` (and the notebook's status "
        "message, as `GET .../notebook` shows it)."
    ),
    response_model=NotebookOut | None,
)
async def stop_notebook(
    username: str,
    project: str,
    request: Request,
    session: SessionDep,
    principal: UserAuthDep,
    settings: SettingsDep,
    body: NotebookStop | None = None,
) -> NotebookOut | None:
    access = await get_project(session, principal, username, project, write=True)
    done = await service.stop_notebook(
        session, settings, access, commit=body.commit if body else True
    )
    wake_after_commit(session, request)
    if done.row is None:
        return None
    commit = done.ref.commit if done.ref else None
    return _notebook_out(done.row, access, commit, message=done.message)


@router.get(
    PROJECT + "/notebook",
    summary="The project's last notebook (with its URL while it runs)",
    response_model=NotebookOut,
)
async def get_notebook(
    username: str, project: str, request: Request, session: SessionDep, principal: AuthDep
) -> NotebookOut:
    access = await get_project(session, principal, username, project)
    row = await service.last_notebook(session, access)
    links = plugin_proxy.links_for(request, principal)
    return _notebook_out(row, access, links=links, message=await service.stop_message(session, row))


@router.post(
    PROJECT + "/notebook/{notebook_id}/repo/upload",
    summary="A stopped notebook's workspace (multipart field `repo`, a .tar.gz), uploaded by its "
    "pod; 201 with the new version when it was stopped with `commit`, else 204",
    description=(
        "Called by the preStop hook of the notebook's pod (Kubernetes runtime) with the "
        "notebook's own token; a user who may write the project may call it too, any other "
        "run's token is refused (403). The archive is checked like `PUT .../repo/upload` (same "
        "limits). It becomes the project's new code version only when the notebook was stopped "
        "with `commit` and nothing was stored for it yet (201); otherwise nothing is read or "
        "written (204)."
    ),
    response_model=CodeReferenceOut,
    status_code=status.HTTP_201_CREATED,
    responses={204: {"description": "Not stopped with `commit`, or already stored"}},
    openapi_extra=REPO_ARCHIVE_BODY,
)
@run_token_route("notebook", id_param="notebook_id")
async def upload_notebook_snapshot(
    username: str,
    project: str,
    notebook_id: RowId,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    settings: SettingsDep,
) -> CodeReferenceOut | Response:
    access = await get_project(session, principal, username, project)
    row = await service.get_notebook(session, access, notebook_id)
    service.check_snapshot_caller(principal, access, row)
    if not service.snapshot_wanted(row):
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    # End the read transaction before the body streams in (as the repo upload does): on SQLite
    # every transaction holds the write lock, and an upload may take seconds.
    await session.commit()
    length = request.headers.get("content-length")
    try:
        staged = await code_service.stage_upload(
            settings,
            access.project.id,
            content_type=request.headers.get("content-type", ""),
            content_length=int(length) if length and length.isdigit() else None,
            stream=request.stream(),
        )
    except PlxError as exc:
        # The notebook is stopped whatever its upload holds: the outcome goes on its status
        # message (committed), an empty workspace is nothing to save, anything else is refused.
        settled = await service.snapshot_not_stored(session, row, exc)
        await session.commit()
        if settled:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        raise
    ref = await service.receive_snapshot(session, settings, row, staged)
    if ref is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return CodeReferenceOut.model_validate(ref)
