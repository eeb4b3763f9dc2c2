"""Code versions of a project (`GET X/repo`, the answer of `PUT X/repo/upload`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.schemas.common import OutSchema, Timestamp

if TYPE_CHECKING:
    from app.services.code import RepoState

# The OpenAPI request body of the routes that take a code archive as the multipart field `repo`
# (the body is streamed by hand, never spooled whole, so it is declared for the docs).
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


class CodeReferenceOut(OutSchema):
    id: int
    commit: str
    size_bytes: int
    num_files: int
    created_at: Timestamp


class RepoOut(OutSchema):
    project: str  # project unique_name, as v0 FKs
    has_code: bool
    commit: str | None  # the current version
    current: CodeReferenceOut | None
    versions: list[CodeReferenceOut]

    @classmethod
    def of(cls, project: str, state: RepoState) -> RepoOut:
        current = state.current
        return cls(
            project=project,
            has_code=current is not None,
            commit=current.commit if current else None,
            current=CodeReferenceOut.model_validate(current) if current else None,
            versions=[CodeReferenceOut.model_validate(v) for v in state.versions],
        )
