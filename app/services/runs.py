"""Shared helpers of runs (experiments, jobs, builds): lookup with run-token rules, paths under
PLX_DATA_DIR, workload keys, logs, statuses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.config import Settings
from app.errors import BadRequest, PermissionDenied
from app.models import (
    Bookmark,
    BuildJob,
    Experiment,
    ExperimentJob,
    Job,
    TensorboardJob,
    User,
)
from app.models.base import utcnow
from app.services.listing import ListParams, paginate
from app.services.projects import (
    PLUGIN_RUNNING,
    ProjectAccess,
    check_project_access,
    find_project_with,
)
from app.services.statuses import insert_with_first_status, kind_of, set_status, status_values
from app.services.unique_names import unique_name
from app.services.users import Principal, delete_run_tokens

RUN_KINDS: dict[str, type] = {"experiment": Experiment, "job": Job, "build": BuildJob}
LABELS = {"experiment": "experiment", "job": "job", "build": "build"}
_KEY_RE = re.compile(r"^(experiment|job|build)-(\d+)-([0-9a-f]{8})(?:-([a-z]+)-(\d+))?$")


@dataclass(frozen=True)
class RunAccess:
    access: ProjectAccess
    run: Any
    kind: str
    facts: ExperimentFacts | None = None  # when asked for with the lookup (get_run facts_for)

    @property
    def project_unique(self) -> str:
        return self.access.unique_name


async def get_run(
    session: AsyncSession,
    principal: Principal,
    username: str,
    project: str,
    kind: str,
    run_id: int,
    *,
    write: bool = False,
    run_write: bool = False,
    facts_for: int | None = None,
) -> RunAccess:
    """Resolve a run of a project. `write`: owner-level action (a run token is refused);
    `run_write`: a write the run itself may do with its own token (metrics, statuses, logs);
    `facts_for`: an experiment's detail facts as this user sees them, in the same query."""
    # Project, owner and run in one round trip; a missing run is the same 404 as a hidden project.
    with_facts = facts_for is not None and kind == "experiment"
    row = await find_project_with(
        session,
        username,
        project,
        RUN_KINDS[kind],
        run_id,
        extra=_facts_columns() if with_facts else (),
        params={"viewer_id": facts_for} if with_facts else None,
    )
    access = check_project_access(principal, row)
    run = row[2]
    if principal.is_run_scoped and not principal.may_act_on_run(kind, run_id):
        raise PermissionDenied("A run token may only act on its own run.")
    if (write or run_write) and not access.can_write:
        raise PermissionDenied()
    if write and principal.is_run_scoped:
        raise PermissionDenied("A run token may only act on its own run.")
    facts = _facts_of(tuple(row[3:])) if with_facts else None
    return RunAccess(access=access, run=run, kind=kind, facts=facts)


async def usernames(session: AsyncSession, user_ids: Any) -> dict[int, str]:
    """Usernames of a page of rows in one query (a list must not look users up row by row)."""
    ids = set(user_ids)
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.username).where(User.id.in_(ids)))
    return dict(rows.all())


def check_project_write(principal: Principal, access: ProjectAccess) -> None:
    if not access.can_write:
        raise PermissionDenied()
    if principal.is_run_scoped:
        raise PermissionDenied("A run token may only act on its own run.")


async def flush_unique_name(session: AsyncSession, kind: str, name: str | None) -> None:
    """Flush the pending writes of a run named `name`; a taken name is a 400."""
    async with unique_name(session, kind, name):
        await session.flush()


async def insert_run(session: AsyncSession, kind: str, run: Any, name: str | None) -> Any:
    """INSERT a new run with its first status and that status's history row (one statement on
    Postgres); a taken `name` is a 400. Returns the persistent row."""
    async with unique_name(session, kind, name):
        return await insert_with_first_status(session, run)


# -- paths and environment ---------------------------------------------------------------------


def run_dir(settings: Settings, kind: str, run_id: int) -> Path:
    return (settings.data_dir / "runs" / kind / str(run_id)).resolve()


def outputs_path(settings: Settings, kind: str, run_id: int) -> Path:
    return run_dir(settings, kind, run_id) / "outputs"


def log_path(settings: Settings, kind: str, run_id: int, replica: str | None = None) -> Path:
    name = "log.txt" if replica in (None, "master-0") else f"{replica}.txt"
    return run_dir(settings, kind, run_id) / "logs" / name


def append_log(settings: Settings, kind: str, run_id: int, lines: str | list[str]) -> None:
    text = "\n".join(lines) if isinstance(lines, list) else lines
    path = log_path(settings, kind, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def workload_key(kind: str, run: Any, role: str | None = None, index: int = 0) -> str:
    base = f"{kind}-{run.id}-{run.uuid[:8]}"
    return f"{base}-{role}-{index}" if role else base


def parse_key(key: str) -> tuple[str, int, str, str | None, int] | None:
    """(kind, id, uuid prefix, role, index) of one of our workload keys, else None."""
    match = _KEY_RE.match(key)
    if match is None:
        return None
    kind, run_id, uuid8, role, index = match.groups()
    return kind, int(run_id), uuid8, role, int(index or 0)


# -- statuses, heartbeat, delete ------------------------------------------------------------------


def check_status_value(model: type, status: str) -> None:
    allowed = status_values(model)
    if status not in allowed:
        expected = ", ".join(sorted(allowed))
        raise BadRequest(f"status: `{status}` is not a valid status; expected one of {expected}")


async def post_status(
    session: AsyncSession,
    run: Any,
    *,
    status: str,
    message: str | None,
    traceback: str | None,
) -> Any:
    """A client-reported status (v0 skipped the transition check); a done run stays done."""
    check_status_value(type(run), status)
    if not await set_status(session, run, status, message=message, traceback=traceback, force=True):
        raise BadRequest(f"status: the run is already `{run.last_status}` and cannot change.")
    kind = kind_of(run)
    return await session.scalar(
        select(kind.status_model)
        .where(getattr(kind.status_model, kind.status_fk) == run.id)
        .order_by(kind.status_model.id.desc())
        .limit(1)
    )


async def list_statuses(session: AsyncSession, run: Any, params: ListParams) -> Any:
    kind = kind_of(run)
    model = kind.status_model
    stmt = (
        select(model)
        .where(getattr(model, kind.status_fk) == run.id)
        .order_by(model.created_at.asc(), model.id.asc())
    )
    return await paginate(session, stmt, params)


def status_out(row: Any, fk_name: str) -> dict[str, Any]:
    kind_fk = "experiment_id" if hasattr(row, "experiment_id") else "job_id"
    out = {
        "id": row.id,
        "uuid": row.uuid,
        fk_name: getattr(row, kind_fk),
        "created_at": row.created_at,
        "message": row.message,
        "traceback": row.traceback,
        "status": row.status,
    }
    if hasattr(row, "details"):
        out["details"] = row.details
    return out


async def heartbeat(session: AsyncSession, run: Any) -> None:
    if hasattr(run, "heartbeat_at"):
        run.heartbeat_at = utcnow()
        await session.flush()


async def delete_runs(session: AsyncSession, kind: str, runs: list[Any]) -> None:
    """Hard delete; the reconciler stops and cleans workloads whose rows are gone."""
    if not runs:
        return
    ids = [r.id for r in runs]
    await delete_run_tokens(session, kind, ids)
    await session.execute(
        delete(Bookmark).where(Bookmark.content_type == kind, Bookmark.object_id.in_(ids))
    )
    for run in runs:
        await session.delete(run)
    await session.flush()


@dataclass(frozen=True)
class ExperimentFacts:
    """What an experiment's detail shows besides its own columns."""

    bookmarked: bool
    num_jobs: int
    has_tensorboard: bool
    original_group_id: int | None
    creator: str


@cache
def _facts_columns() -> tuple[Any, ...]:
    """An experiment's detail facts as scalar subqueries correlated with `experiments` (bound:
    `viewer_id`), to add to a query of the experiment: the same tuple object every time, so
    statements built with it are cached (projects._project_statement)."""
    exp = Experiment
    bookmarked = (
        select(Bookmark.id)
        .where(
            Bookmark.user_id == bindparam("viewer_id"),
            Bookmark.content_type == "experiment",
            Bookmark.object_id == exp.id,
        )
        .correlate(exp)
        .exists()
    )
    num_jobs = (
        select(func.count())
        .select_from(ExperimentJob)
        .where(ExperimentJob.experiment_id == exp.id)
        .correlate(exp)
        .scalar_subquery()
    )
    tensorboard = (
        select(TensorboardJob.last_status)
        .where(
            TensorboardJob.project_id == exp.project_id,
            TensorboardJob.experiment_id == exp.id,
            TensorboardJob.experiment_group_id.is_(None),
        )
        .order_by(TensorboardJob.id.desc())
        .limit(1)
        .correlate(exp)
        .scalar_subquery()
    )
    # Aliases: the outer query has `experiments` (and `users`, the owner) of its own.
    original, creator = aliased(Experiment), aliased(User)
    original_group = (
        select(original.experiment_group_id)
        .where(original.id == exp.original_id)
        .correlate(exp)
        .scalar_subquery()
    )
    creator_name = (
        select(creator.username).where(creator.id == exp.user_id).correlate(exp).scalar_subquery()
    )
    return (bookmarked, num_jobs, tensorboard, original_group, creator_name)


def _facts_of(row: tuple[Any, ...]) -> ExperimentFacts:
    bookmarked, num_jobs, tensorboard, original_group, creator = row
    return ExperimentFacts(
        bookmarked=bool(bookmarked),
        num_jobs=int(num_jobs or 0),
        has_tensorboard=tensorboard in PLUGIN_RUNNING,
        original_group_id=original_group,
        creator=creator or "",
    )


@cache
def _facts_statement() -> Any:
    return select(*_facts_columns()).where(Experiment.id == bindparam("exp_id"))


async def experiment_facts(
    session: AsyncSession, exp: Experiment, viewer_id: int
) -> ExperimentFacts:
    """Bookmark, replica count, live tensorboard, original's group and creator: one round trip
    of scalar subqueries instead of one query each."""
    params = {"viewer_id": viewer_id, "exp_id": exp.id}
    return _facts_of(tuple((await session.execute(_facts_statement(), params)).one()))


def new_experiment_facts(creator: str) -> ExperimentFacts:
    """The facts of an experiment this request just created: nothing points at it yet."""
    return ExperimentFacts(
        bookmarked=False, num_jobs=0, has_tensorboard=False, original_group_id=None, creator=creator
    )
