"""Projects: access rules, CRUD, counters and bookmarks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, NotFound, PermissionDenied
from app.kinds import TOKEN_KINDS, project_unique_name
from app.logic.query import FieldKind
from app.logic.statuses import Status
from app.models import (
    Bookmark,
    BuildJob,
    Experiment,
    ExperimentGroup,
    Job,
    NotebookJob,
    Project,
    TensorboardJob,
    User,
)
from app.services.listing import FieldMap, ListParams, apply_query, apply_sort, paginate
from app.services.unique_names import unique_name
from app.services.users import Principal, delete_run_tokens

PROJECT_KIND = "project"  # Bookmark.content_type and unique-name scope of projects
PLUGIN_RUNNING = (Status.BUILDING, Status.SCHEDULED, Status.RUNNING)


@dataclass(frozen=True)
class ProjectAccess:
    project: Project
    owner: User
    can_write: bool

    @property
    def unique_name(self) -> str:
        return project_unique_name(self.owner.username, self.project.name)


def _can_write(principal: Principal, owner_id: int) -> bool:
    return principal.user.is_superuser or principal.user.id == owner_id


async def get_project(
    session: AsyncSession, principal: Principal, username: str, name: str, *, write: bool = False
) -> ProjectAccess:
    """Resolve a project: private ones of others are 404, writes to others' public ones 403."""
    row = await find_project_with(session, username, name)
    return check_project_access(principal, row, write=write)


@cache
def _project_statement(run_model: Any = None, extra: tuple[Any, ...] = ()) -> Any:
    """(Project, owner[, run][, *extra]) by owner username, project name [and run id], built
    once with bound parameters: building a statement and its cache key per request cost more
    CPU than executing it. `extra`: columns a caller adds (the same tuple object each time)."""
    stmt = (
        select(Project, User)
        .join(User, User.id == Project.user_id)
        .where(User.username == bindparam("username"), Project.name == bindparam("project"))
    )
    if run_model is not None:
        stmt = stmt.add_columns(run_model).where(
            run_model.id == bindparam("run_id"), run_model.project_id == Project.id
        )
    return stmt.add_columns(*extra) if extra else stmt


async def find_project_with(
    session: AsyncSession,
    username: str,
    name: str,
    run_model: Any = None,
    run_id: int = 0,
    *,
    extra: tuple[Any, ...] = (),
    params: dict[str, Any] | None = None,
) -> Any:
    """(Project, owner) by owner username and name in one query, or None; with `run_model`,
    (Project, owner, run): the project's run `run_id` fetched in the same trip; `extra`
    columns (with their bound `params`) after those."""
    if "\x00" in username or "\x00" in name:  # PostgreSQL text cannot hold NUL
        return None
    values = {"username": username, "project": name, **(params or {})}
    if run_model is not None:
        values["run_id"] = run_id
    return (await session.execute(_project_statement(run_model, extra), values)).first()


def check_project_access(principal: Principal, row: Any, *, write: bool = False) -> ProjectAccess:
    """The permission rule of contract.md 4 on a (Project, owner, ...) row."""
    if row is None:
        raise NotFound()
    project, owner = row[0], row[1]
    can_write = _can_write(principal, owner.id)
    if not can_write and not project.is_public:
        raise NotFound()
    if write and not can_write:
        raise PermissionDenied()
    if write and principal.is_run_scoped:
        raise PermissionDenied("A run token may only act on its own run.")
    return ProjectAccess(project=project, owner=owner, can_write=can_write)


async def create_project(
    session: AsyncSession,
    principal: Principal,
    *,
    data: dict[str, Any],
    default_public: bool = True,
) -> ProjectAccess:
    """A new project of the caller's, with the caller's (owner's) access to it."""
    if principal.is_run_scoped:
        raise PermissionDenied("A run token may only act on its own run.")
    if data.get("is_public") is None:  # the body did not say: the operator's default
        data = {**data, "is_public": default_public}
    project = Project(user_id=principal.user.id, **data)
    session.add(project)
    async with unique_name(session, PROJECT_KIND, data["name"]):
        await session.flush()
    return ProjectAccess(project=project, owner=principal.user, can_write=True)


async def update_project(
    session: AsyncSession, access: ProjectAccess, *, changes: dict[str, Any], merge: bool
) -> Project:
    for required in ("name", "is_public"):
        if required in changes and changes[required] is None:
            raise BadRequest(f"{required}: may not be null")
    project = access.project
    if merge and changes.get("tags") is not None:
        changes["tags"] = list(dict.fromkeys([*(project.tags or []), *changes["tags"]]))
    for key, value in changes.items():
        setattr(project, key, value)
    async with unique_name(session, PROJECT_KIND, changes.get("name")):
        await session.flush()
    return project


# The run kinds whose rows carry run-scoped tokens (Token.run_kind), by model.
RUN_MODELS: dict[str, Any] = {k.kind.value: k.model for k in TOKEN_KINDS}


async def delete_project(session: AsyncSession, access: ProjectAccess) -> None:
    """Rows cascade; the reconciler sees workloads without rows and stops them."""
    project_id = access.project.id
    for kind, model in RUN_MODELS.items():
        await delete_run_tokens(
            session, kind, select(model.id).where(model.project_id == project_id)
        )
    await session.execute(
        delete(Bookmark).where(
            Bookmark.content_type == PROJECT_KIND, Bookmark.object_id == access.project.id
        )
    )
    await session.delete(access.project)
    await session.flush()


PROJECT_FIELDS = FieldMap(
    fields={
        "id": (FieldKind.VALUE, Project.id),
        "name": (FieldKind.VALUE, Project.name),
        "created_at": (FieldKind.DATETIME, Project.created_at),
        "updated_at": (FieldKind.DATETIME, Project.updated_at),
        "tags": (FieldKind.TAGS, Project.tags),
        "is_public": (FieldKind.BOOL, Project.is_public),
    },
    sortable={
        "created_at": Project.created_at,
        "updated_at": Project.updated_at,
        "name": Project.name,
    },
    default_sort=(Project.updated_at.desc(), Project.id.desc()),
)


async def list_projects(
    session: AsyncSession, principal: Principal, owner: User, params: ListParams
) -> tuple[tuple[int, list[Project], str | None, str | None], set[int]]:
    """A page of the owner's projects the caller may see, and which of them they bookmarked."""
    stmt = select(Project).where(Project.user_id == owner.id)
    if not _can_write(principal, owner.id):
        stmt = stmt.where(Project.is_public.is_(True))
    stmt = apply_sort(
        apply_query(stmt, params.query, PROJECT_FIELDS),
        params.sort,
        PROJECT_FIELDS,
    )
    found = await paginate(session, stmt, params)
    marked = await bookmarked_ids(session, principal.user, PROJECT_KIND, [p.id for p in found[1]])
    return found, marked


async def bookmarked_ids(
    session: AsyncSession, user: User, content_type: str, ids: list[int]
) -> set[int]:
    if not ids:
        return set()
    rows = await session.scalars(
        select(Bookmark.object_id).where(
            Bookmark.user_id == user.id,
            Bookmark.content_type == content_type,
            Bookmark.object_id.in_(ids),
        )
    )
    return set(rows)


async def set_bookmark(
    session: AsyncSession, user: User, content_type: str, object_id: int, *, on: bool
) -> None:
    """Idempotent bookmark / unbookmark (a concurrent double bookmark is not an error)."""
    if not on:
        await session.execute(
            delete(Bookmark).where(
                Bookmark.user_id == user.id,
                Bookmark.content_type == content_type,
                Bookmark.object_id == object_id,
            )
        )
        return
    exists_already = await session.scalar(
        select(Bookmark.id).where(
            Bookmark.user_id == user.id,
            Bookmark.content_type == content_type,
            Bookmark.object_id == object_id,
        )
    )
    if exists_already is None:
        session.add(Bookmark(user_id=user.id, content_type=content_type, object_id=object_id))
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            pass


async def set_project_bookmark(
    session: AsyncSession, user: User, access: ProjectAccess, *, on: bool
) -> None:
    await set_bookmark(session, user, PROJECT_KIND, access.project.id, on=on)


def _last_plugin_status(model: Any, project_id: int) -> Any:
    stmt = select(model.last_status).where(model.project_id == project_id)
    if model is TensorboardJob:
        stmt = stmt.where(
            TensorboardJob.experiment_id.is_(None), TensorboardJob.experiment_group_id.is_(None)
        )
    return stmt.order_by(model.id.desc()).limit(1).scalar_subquery()


def _count_in_project(model: Any, project_id: int, *where: Any) -> Any:
    return (
        select(func.count())
        .select_from(model)
        .where(model.project_id == project_id, *where)
        .scalar_subquery()
    )


async def project_counters(
    session: AsyncSession, project: Project, viewer_id: int
) -> dict[str, Any]:
    """The detail counters and the viewer's bookmark in one round trip (scalar subqueries)."""
    pid = project.id
    bookmarked = (
        select(Bookmark.id)
        .where(
            Bookmark.user_id == viewer_id,
            Bookmark.content_type == PROJECT_KIND,
            Bookmark.object_id == pid,
        )
        .exists()
    )
    row = (
        await session.execute(
            select(
                _last_plugin_status(TensorboardJob, pid),
                _last_plugin_status(NotebookJob, pid),
                _count_in_project(ExperimentGroup, pid),
                _count_in_project(Experiment, pid, Experiment.experiment_group_id.is_(None)),
                _count_in_project(Experiment, pid),
                _count_in_project(Job, pid),
                _count_in_project(BuildJob, pid),
                bookmarked,
            )
        )
    ).one()
    tensorboard, notebook, groups, independent, experiments, jobs, builds, marked = row
    return {
        "has_code": project.code_reference_id is not None,
        "has_tensorboard": tensorboard in PLUGIN_RUNNING,
        "has_notebook": notebook in PLUGIN_RUNNING,
        "num_experiment_groups": int(groups or 0),
        "num_independent_experiments": int(independent or 0),
        "num_experiments": int(experiments or 0),
        "num_jobs": int(jobs or 0),
        "num_builds": int(builds or 0),
        "bookmarked": bool(marked),
    }


def new_project_counters(project: Project) -> dict[str, Any]:
    """The counters of a project this request just created: it holds nothing yet."""
    return {
        "has_code": project.code_reference_id is not None,
        "has_tensorboard": False,
        "has_notebook": False,
        "num_experiment_groups": 0,
        "num_independent_experiments": 0,
        "num_experiments": 0,
        "num_jobs": 0,
        "num_builds": 0,
        "bookmarked": False,
    }
