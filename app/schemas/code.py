"""Code versions of a project (`GET X/repo`, the answer of `PUT X/repo/upload`)."""

from __future__ import annotations

from app.schemas.common import OutSchema, Timestamp


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
