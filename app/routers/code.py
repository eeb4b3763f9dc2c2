"""Project code: `PUT X/repo/upload`, `GET X/repo`, `GET X/repo/download[?commit=]`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from app.deps import AuthDep, SessionDep, SettingsDep, UserAuthDep, run_token_route
from app.schemas.code import CodeReferenceOut, RepoOut
from app.services import code as service
from app.services.projects import get_project
from app.services.run_tokens import own_code_version

router = APIRouter(prefix="/api/v1", tags=["code"])

# The OpenAPI request body of the routes that take a code archive as the multipart field `repo`.
REPO_ARCHIVE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["repo"],
                    "properties": {"repo": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.put(
    "/{username}/{project}/repo/upload",
    summary="Upload the project's code (multipart field `repo`, a .tar.gz) as a new version",
    response_model=CodeReferenceOut,
    # The body is streamed by hand (never spooled whole), so it is declared here for the docs.
    openapi_extra=REPO_ARCHIVE_BODY,
)
async def upload_repo(
    username: str,
    project: str,
    request: Request,
    session: SessionDep,
    principal: UserAuthDep,
    settings: SettingsDep,
) -> CodeReferenceOut:
    access = await service.check_upload_allowed(session, principal, username, project)
    # End the read transaction before the body streams in: on SQLite every transaction holds
    # the write lock (BEGIN IMMEDIATE), and an upload may take seconds.
    await session.commit()
    length = request.headers.get("content-length")
    staged = await service.stage_upload(
        settings,
        access.project.id,
        content_type=request.headers.get("content-type", ""),
        content_length=int(length) if length and length.isdigit() else None,
        stream=request.stream(),
    )
    ref = await service.publish_version(session, settings, staged)
    return CodeReferenceOut.model_validate(ref)


@router.get(
    "/{username}/{project}/repo",
    summary="The project's current code version and its history",
    response_model=RepoOut,
)
async def get_repo(username: str, project: str, session: SessionDep, principal: AuthDep) -> RepoOut:
    access = await get_project(session, principal, username, project)
    current = await service.current_reference(session, access.project)
    versions = await service.list_references(session, access.project)
    return RepoOut(
        project=access.unique_name,
        has_code=current is not None,
        commit=current.commit if current else None,
        current=CodeReferenceOut.model_validate(current) if current else None,
        versions=[CodeReferenceOut.model_validate(v) for v in versions],
    )


@router.get(
    "/{username}/{project}/repo/download",
    summary="Download a code version as .tar.gz (the current one unless `commit` is given)",
    response_class=FileResponse,
)
@run_token_route("experiment", "job", "build", "notebook")
async def download_repo(
    username: str,
    project: str,
    session: SessionDep,
    principal: AuthDep,
    settings: SettingsDep,
    commit: Annotated[str | None, Query(max_length=64, description="version id")] = None,
) -> FileResponse:
    access = await get_project(session, principal, username, project)
    if principal.is_run_scoped:
        commit = await own_code_version(session, principal, access.project.id, commit)
    ref = await service.resolve_reference(session, access.project, commit)
    return FileResponse(
        service.tarball_path(settings, ref),
        media_type="application/gzip",
        filename=f"{access.project.name}.tar.gz",
        headers={"X-Plx-Commit": ref.commit},
    )
