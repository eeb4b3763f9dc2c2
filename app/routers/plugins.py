"""Tensorboards (project, group, experiment) and the project notebook: start, stop, list, and the
upload of a stopped notebook's workspace by its pod (Kubernetes).

No `from __future__ import annotations`: the tensorboard routes are built per target.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from app import deps
from app.kinds import NOTEBOOK
from app.routers.code import REPO_ARCHIVE_BODY
from app.schemas.code import CodeReferenceOut
from app.schemas.common import Page, RowId
from app.schemas.plugins import NotebookOut, NotebookStop, PluginStart, TensorboardOut
from app.services import plugin_proxy
from app.services import plugins as service

router = APIRouter(prefix="/api/v1", tags=["plugins"])
PROJECT = "/{username}/{project}"
STARTED = {True: status.HTTP_201_CREATED, False: status.HTTP_200_OK}


async def _links(request: Request, principal: deps.AuthDep) -> plugin_proxy.Links:
    return plugin_proxy.links_for(request, principal)


# Where the caller's browser reaches a plugin (the proxy's address, with a ticket).
Links = Annotated[plugin_proxy.Links, Depends(_links)]


async def _whole_project() -> service.Target:
    return service.Target()


async def _group(
    access: deps.ProjectWrite, group_id: RowId, session: deps.SessionDep
) -> service.Target:
    return service.Target(group=await service.get_group(session, access, group_id))


async def _experiment(
    access: deps.ProjectWrite, experiment_id: RowId, session: deps.SessionDep
) -> service.Target:
    return service.Target(experiment=await service.get_experiment(session, access, experiment_id))


# What a tensorboard shows: (path under the project, whose in summaries, target dependency).
TARGETS = (
    ("", "the project's", _whole_project),
    ("/groups/{group_id}", "a group's", _group),
    ("/experiments/{experiment_id}", "an experiment's", _experiment),
)


def add_tensorboard_routes(path: str, whose: str, resolve: Any) -> None:
    target = Depends(resolve)

    @router.post(
        PROJECT + path + "/tensorboard/start",
        summary=f"Start {whose} tensorboard (201; 200 with the same when already running)",
        response_model=TensorboardOut,
        status_code=status.HTTP_201_CREATED,
        dependencies=[deps.WAKE],
    )
    async def start_tensorboard(
        principal: deps.UserAuthDep,
        access: deps.ProjectWrite,
        target: Annotated[service.Target, target],
        links: Links,
        response: Response,
        session: deps.SessionDep,
        body: PluginStart | None = None,
    ) -> TensorboardOut:
        row, created = await service.start_tensorboard(
            session, access, principal.user.id, target=target, config=body.config if body else None
        )
        response.status_code = STARTED[created]
        return plugin_proxy.tensorboard_out(row, access, links)

    @router.post(
        PROJECT + path + "/tensorboard/stop",
        summary=f"Stop {whose} tensorboard",
        response_model=TensorboardOut | None,
        dependencies=[deps.USER_ONLY, deps.WAKE],
    )
    async def stop_tensorboard(
        access: deps.ProjectWrite,
        target: Annotated[service.Target, target],
        session: deps.SessionDep,
    ) -> TensorboardOut | None:
        row = await service.stop_tensorboard(session, access, target=target)
        return plugin_proxy.tensorboard_out(row, access) if row else None


for target_path, target_whose, target_resolve in TARGETS:
    add_tensorboard_routes(target_path, target_whose, target_resolve)


@router.get(
    PROJECT + "/tensorboards",
    summary="List the project's tensorboards (project, group and experiment ones)",
    response_model=Page[TensorboardOut],
)
async def list_tensorboards(
    access: deps.ProjectRead, links: Links, session: deps.SessionDep, params: deps.ListDep
) -> Any:
    found = await service.list_tensorboards(session, access, params)
    return Page.of(found, lambda row: plugin_proxy.tensorboard_out(row, access, links))


@router.post(
    PROJECT + "/notebook/start",
    summary="Start the project's notebook (201; 200 with the same when already running)",
    response_model=NotebookOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[deps.WAKE],
)
async def start_notebook(
    principal: deps.UserAuthDep,
    access: deps.ProjectWrite,
    links: Links,
    response: Response,
    session: deps.SessionDep,
    body: PluginStart | None = None,
) -> NotebookOut:
    row, created = await service.start_notebook(
        session, access, principal.user.id, config=body.config if body else None
    )
    response.status_code = STARTED[created]
    return plugin_proxy.notebook_out(row, access, links)


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
    dependencies=[deps.USER_ONLY, deps.WAKE],
)
async def stop_notebook(
    access: deps.ProjectWrite,
    session: deps.SessionDep,
    settings: deps.SettingsDep,
    body: NotebookStop | None = None,
) -> NotebookOut | None:
    done = await service.stop_notebook(
        session, settings, access, commit=body.commit if body else True
    )
    if done.row is None:
        return None
    commit = done.ref.commit if done.ref else None
    return plugin_proxy.notebook_out(done.row, access, commit=commit, message=done.message)


@router.get(
    PROJECT + "/notebook",
    summary="The project's last notebook (with its URL while it runs)",
    response_model=NotebookOut,
)
async def get_notebook(
    access: deps.ProjectRead, links: Links, session: deps.SessionDep
) -> NotebookOut:
    row = await service.last_notebook(session, access)
    return plugin_proxy.notebook_out(
        row, access, links, message=await service.stop_message(session, row)
    )


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
@deps.run_token_route(NOTEBOOK.kind, id_param="notebook_id")
async def upload_notebook_snapshot(
    access: deps.ProjectRead,
    notebook_id: RowId,
    request: Request,
    session: deps.SessionDep,
    principal: deps.AuthDep,
    settings: deps.SettingsDep,
) -> CodeReferenceOut | Response:
    ref = await service.upload_snapshot(
        session, settings, access, principal, notebook_id, request.headers, request.stream()
    )
    if ref is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return CodeReferenceOut.model_validate(ref)
