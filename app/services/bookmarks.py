"""A user's bookmarks, by kind, rendered as v0's `{"content_object": {...}}` list items.

Bookmark rows (`app/models/projects.py`) name their object by `content_type` and `object_id`:
"project", "experiment", "experiment_group", "job", "build". Objects that are gone, or that sit
in a private project the bookmarking user can no longer see, are left out.

The content objects carry the v0 *list* field set of each kind (polyaxon-v0.md 4.2) with FKs as
strings, built here from the rows so the list works whether or not a kind's own router exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.errors import BadRequest, PermissionDenied
from app.models import Bookmark, BuildJob, Experiment, ExperimentGroup, Job, Project, User
from app.services.listing import ListParams, paginate
from app.services.users import Principal, get_user_or_404


@dataclass(frozen=True)
class BookmarkKind:
    content_type: str
    model: Any


KINDS: dict[str, BookmarkKind] = {
    "projects": BookmarkKind("project", Project),
    "experiments": BookmarkKind("experiment", Experiment),
    "groups": BookmarkKind("experiment_group", ExperimentGroup),
    "experiment_groups": BookmarkKind("experiment_group", ExperimentGroup),
    "jobs": BookmarkKind("job", Job),
    "builds": BookmarkKind("build", BuildJob),
}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _project_unique(project: Project, owner: User) -> str:
    return f"{owner.username}.{project.name}"


def _project(project: Project, owner: User) -> dict[str, Any]:
    return {
        "id": project.id,
        "uuid": project.uuid,
        "user": owner.username,
        "name": project.name,
        "unique_name": _project_unique(project, owner),
        "description": project.description,
        "tags": project.tags,
        "created_at": _iso(project.created_at),
        "updated_at": _iso(project.updated_at),
        "is_public": project.is_public,
        "bookmarked": True,
    }


def _run_common(row: Any, owner: User, project_unique: str, unique_name: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "uuid": row.uuid,
        "name": row.name,
        "unique_name": unique_name,
        "user": owner.username,
        "description": row.description,
        "project": project_unique,
        "tags": row.tags,
        "last_status": row.last_status,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "bookmarked": True,
    }


def _group(group: ExperimentGroup, owner: User, project_unique: str) -> dict[str, Any]:
    return {
        **_run_common(group, owner, project_unique, f"{project_unique}.{group.id}"),
        "group_type": group.group_type,
        "concurrency": group.concurrency,
        "search_algorithm": group.search_algorithm,
    }


def _experiment(
    experiment: Experiment, owner: User, project_unique: str, refs: dict[str, dict[int, str]]
) -> dict[str, Any]:
    group_unique = (
        f"{project_unique}.{experiment.experiment_group_id}"
        if experiment.experiment_group_id is not None
        else None
    )
    unique_name = f"{group_unique or project_unique}.{experiment.id}"
    return {
        **_run_common(experiment, owner, project_unique, unique_name),
        "experiment_group": group_unique,
        "build_job": _build_unique(project_unique, experiment.build_job_id),
        "original": refs["experiments"].get(experiment.original_id or 0),
        "cloning_strategy": experiment.cloning_strategy,
        "last_metric": experiment.last_metric,
        "declarations": experiment.declarations,
    }


def _build_unique(project_unique: str, build_id: int | None) -> str | None:
    return f"{project_unique}.builds.{build_id}" if build_id is not None else None


def _job(job: Job, owner: User, project_unique: str) -> dict[str, Any]:
    return {
        **_run_common(job, owner, project_unique, f"{project_unique}.jobs.{job.id}"),
        "build_job": _build_unique(project_unique, job.build_job_id),
    }


def _build(build: BuildJob, owner: User, project_unique: str) -> dict[str, Any]:
    return _run_common(build, owner, project_unique, f"{project_unique}.builds.{build.id}")


async def _original_names(session: AsyncSession, rows: list[Any]) -> dict[int, str]:
    """unique_name of the originals of cloned experiments on this page."""
    ids = {row[0].original_id for row in rows if getattr(row[0], "original_id", None)}
    if not ids:
        return {}
    owner = aliased(User)
    result = await session.execute(
        select(Experiment.id, Experiment.experiment_group_id, Project.name, owner.username)
        .join(Project, Project.id == Experiment.project_id)
        .join(owner, owner.id == Project.user_id)
        .where(Experiment.id.in_(ids))
    )
    names: dict[int, str] = {}
    for exp_id, group_id, project_name, username in result.all():
        prefix = f"{username}.{project_name}"
        names[exp_id] = f"{prefix}.{group_id}.{exp_id}" if group_id else f"{prefix}.{exp_id}"
    return names


def _statement(kind: BookmarkKind, user: User) -> Select[Any]:
    """(object, project owner, project, creator) per visible bookmarked object, newest first."""
    model = kind.model
    project_owner = aliased(User)
    creator = aliased(User)
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
) -> tuple[int, list[dict[str, Any]], str | None, str | None]:
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
    refs = {"experiments": await _original_names(session, rows)}
    items = []
    for obj, owner, project, creator in rows:
        if kind.model is Project:
            content = _project(obj, owner)
        else:
            content = _render(obj, creator, _project_unique(project, owner), refs)
        items.append({"content_object": content})
    return count, items, next_url, prev_url


def _render(
    obj: Any, owner: User, project_unique: str, refs: dict[str, dict[int, str]]
) -> dict[str, Any]:
    if isinstance(obj, Experiment):
        return _experiment(obj, owner, project_unique, refs)
    if isinstance(obj, ExperimentGroup):
        return _group(obj, owner, project_unique)
    if isinstance(obj, Job):
        return _job(obj, owner, project_unique)
    return _build(obj, owner, project_unique)
