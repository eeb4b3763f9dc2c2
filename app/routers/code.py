"""Project code: `PUT X/repo/upload`, `GET X/repo`, `GET X/repo/download[?commit=]`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from app.deps import (
    AuthDep,
    ProjectRead,
    ProjectWrite,
    SessionDep,
    SettingsDep,
    UserAuthDep,
    run_token_route,
)
from app.schemas.code import REPO_ARCHIVE_BODY, CodeReferenceOut, RepoOut
from app.services import code as service

router = APIRouter(prefix="/api/v1/{username}/{project}/repo", tags=["code"])


@router.get(
    "", summary="The project's current code version and its history", response_model=RepoOut
)
async def get_repo(session: SessionDep, access: ProjectRead) -> RepoOut:
    return RepoOut.of(access.unique_name, await service.repo_state(session, access.project))


@router.put(
    "/upload",
    summary="Upload the project's code (multipart field `repo`, a .tar.gz) as a new version",
    response_model=CodeReferenceOut,
    openapi_extra=REPO_ARCHIVE_BODY,
)
async def upload_repo(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _user: UserAuthDep,
    access: ProjectWrite,
) -> CodeReferenceOut:
    ref = await service.upload_version(
        session, settings, access, headers=request.headers, stream=request.stream()
    )
    return CodeReferenceOut.model_validate(ref)


@router.get(
    "/download",
    summary="Download a code version as .tar.gz (the current one unless `commit` is given)",
    response_class=FileResponse,
)
@run_token_route("experiment", "job", "build", "notebook")
async def download_repo(
    session: SessionDep,
    settings: SettingsDep,
    principal: AuthDep,
    access: ProjectRead,
    commit: Annotated[str | None, Query(max_length=64, description="version id")] = None,
) -> FileResponse:
    ref = await service.downloadable_reference(session, principal, access.project, commit)
    return FileResponse(
        service.tarball_path(settings, ref),
        media_type="application/gzip",
        filename=f"{access.project.name}.tar.gz",
        headers={"X-Plx-Commit": ref.commit},
    )
