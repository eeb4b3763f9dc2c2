"""A user's bookmarks, by kind, rendered as v0's `{"content_object": {...}}` list items.

Bookmark rows (`app/models/projects.py`) name their object by `content_type` and `object_id`:
"project", "experiment", "experiment_group", "job", "build". Objects that are gone, or that sit
in a private project the bookmarking user can no longer see, are left out.

The content objects carry the v0 *list* field set of each kind (polyaxon-v0.md 4.2) with FKs as
strings: the serialisers the kinds' own list routes use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app import kinds
from app.errors import BadRequest, PermissionDenied
from app.kinds import GROUP, project_unique_name
from app.models import Bookmark, BuildJob, Experiment, ExperimentGroup, Job, Project, User
from app.schemas.common import RowContext
from app.schemas.experiments import ExperimentOut
from app.schemas.jobs import BuildOut, JobOut
from app.schemas.projects import BookmarkOut, ProjectOut
from app.services.listing import ListParams, paginate
from app.services.runs import original_groups
from app.services.users import Principal, get_user_or_404


@dataclass(frozen=True)
class BookmarkKind:
    content_type: str
    model: Any


_PROJECT = BookmarkKind("project", Project)
_BY_SEGMENT = {
    k.segment: BookmarkKind(k.bookmark, k.model)
    for k in kinds.KINDS.values()
    if k.bookmark and k.segment
}
KINDS: dict[str, BookmarkKind] = {
    "projects": _PROJECT,
    **_BY_SEGMENT,
    "experiment_groups": _BY_SEGMENT[GROUP.segment or ""],
}
# Run list shapes, the same the kinds' own list routes answer with.
ROW_SCHEMAS: dict[type[Any], Any] = {Experiment: ExperimentOut, Job: JobOut, BuildJob: BuildOut}


def _group(group: ExperimentGroup, owner: User, project_unique: str) -> dict[str, Any]:
    # The group's own list shape is schemas/groups.py's (kept here as v0 listed it).
    return {
        "id": group.id,
        "uuid": group.uuid,
        "name": group.name,
        "unique_name": GROUP.unique_name(project_unique, group.id),
        "user": owner.username,
        "description": group.description,
        "project": project_unique,
        "tags": group.tags,
        "last_status": group.last_status,
        "created_at": group.created_at.isoformat(),
        "updated_at": group.updated_at.isoformat(),
        "started_at": group.started_at.isoformat() if group.started_at else None,
        "finished_at": group.finished_at.isoformat() if group.finished_at else None,
        "bookmarked": True,
        "group_type": group.group_type,
        "concurrency": group.concurrency,
        "search_algorithm": group.search_algorithm,
    }


def _statement(kind: BookmarkKind, user: User) -> Any:
    """(object, project owner, project, creator) per visible bookmarked object, newest first."""
    model = kind.model
    project_owner = aliased(User)
    creator = aliased(User)
    stmt: Select[Any, User, Project, User]
    if model is Project:
        stmt = select(model, project_owner, Project, project_owner).join(
            project_owner, project_owner.id == Project.user_id
        )
    else:
        stmt = (
            select(model, project_owner, Project, creator)
            .join(Project, Project.id == model.project_id)
            .join(project_owner, project_owner.id == Project.user_id)
            .join(creator, creator.id == model.user_id)
        )
    stmt = stmt.join(
        Bookmark,
        (Bookmark.object_id == model.id)
        & (Bookmark.content_type == kind.content_type)
        & (Bookmark.user_id == user.id),
    )
    if not user.is_superuser:
        stmt = stmt.where(or_(Project.is_public.is_(True), Project.user_id == user.id))
    return stmt.order_by(Bookmark.id.desc())


async def list_bookmarks(
    session: AsyncSession, principal: Principal, username: str, kind_name: str, params: ListParams
) -> tuple[int, list[BookmarkOut], str | None, str | None]:
    """One page of `username`'s bookmarks of one kind; only they (or a superuser) may see it."""
    kind = KINDS.get(kind_name)
    if kind is None:
        allowed = ", ".join(sorted(KINDS))
        raise BadRequest(f"kind: unknown bookmark kind `{kind_name}` (use one of {allowed})")
    if principal.is_run_scoped:
        raise PermissionDenied("A run token may only act on its own run.")
    user = await get_user_or_404(session, username)
    if principal.user.id != user.id and not principal.user.is_superuser:
        raise PermissionDenied()
    count, rows, next_url, prev_url = await paginate(
        session, _statement(kind, user), params, scalars=False
    )
    originals = await original_groups(session, [row[0] for row in rows])
    items = [
        BookmarkOut(content_object=_render(obj, owner, project, creator, originals))
        for obj, owner, project, creator in rows
    ]
    return count, items, next_url, prev_url


def _render(
    obj: Any, owner: User, project: Project, creator: User, originals: dict[int, int | None]
) -> dict[str, Any]:
    """v0's list shape of a bookmarked object, JSON-ready (the list holds several shapes)."""
    if isinstance(obj, Project):
        return ProjectOut.from_row(obj, owner, bookmarked=True).model_dump(mode="json")
    project_unique = project_unique_name(owner.username, project.name)
    if isinstance(obj, ExperimentGroup):
        return _group(obj, creator, project_unique)
    ctx = RowContext(project_unique, {creator.id: creator.username}, {obj.id}, originals)
    return ROW_SCHEMAS[type(obj)].from_row(obj, ctx).model_dump(mode="json")
