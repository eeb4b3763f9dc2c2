"""Tensorboards and notebooks: start/stop requests, listing, and the facts the reconciler needs.

A start creates a row in `created` (or answers the live one); a stop marks it `stopped` at once
(so `has_tensorboard` / `has_notebook` drop) and the reconciler stops whatever still runs for a
row that is done or gone. Notebook stop with `commit` snapshots the notebook's working copy as a
new code version: on the local runtime before answering (the working copy is a directory of this
machine); on Kubernetes the workspace lives in the pod, whose preStop hook uploads it when the
reconciler deletes the Deployment (app/k8s/manifests.py), and `receive_snapshot` stores it.

`NotebookJob.commit_on_stop` says whether a commit is still owed for a stopped notebook: set by
the stop, cleared once the snapshot is stored (or, locally, was taken), so a notebook's work
becomes at most one version.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tarfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
from sqlalchemy import CursorResult, Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import NotFound, PermissionDenied, PlxError
from app.logic.refs import check_config
from app.logic.statuses import DONE, Status
from app.logic.tarballs import EmptyTarball, remove_tree
from app.models import (
    CodeReference,
    Experiment,
    ExperimentGroup,
    NotebookJob,
    NotebookJobStatus,
    Project,
    TensorboardJob,
)
from app.services import code as code_service
from app.services.listing import ListParams, paginate
from app.services.projects import ProjectAccess
from app.services.runs import run_dir
from app.services.statuses import MESSAGE_MAX, set_status
from app.services.users import Principal

PLUGIN_RUNNING = (Status.BUILDING, Status.SCHEDULED, Status.RUNNING)
STOPPED = "Stopped on request."
NOTHING_SAVED = "Its workspace is empty: nothing to save."
UNCHANGED = "Its work has no changes since the project's current version: nothing to save."
SNAPSHOT_EXCLUDE = {".ipynb_checkpoints", "__pycache__", ".git"}
EXTRAS = {
    "tensorboard": ("tensorboard", "pip install 'plx[tensorboard]'"),
    "notebook": ("jupyter-server", "pip install 'plx[notebook]'"),
}


@dataclass(frozen=True)
class Target:
    """What a tensorboard shows: the project, one group, or one experiment."""

    group: ExperimentGroup | None = None
    experiment: Experiment | None = None


def is_live(row: Any) -> bool:
    return row.last_status is not None and row.last_status not in DONE


async def _in_project(session: AsyncSession, access: ProjectAccess, model: Any, row_id: int) -> Any:
    """The row of `model` with this id in the project; 404 for a missing one or another's."""
    row = await session.get(model, row_id)
    if row is None or row.project_id != access.project.id:
        raise NotFound()
    return row


async def get_group(session: AsyncSession, access: ProjectAccess, group_id: int) -> ExperimentGroup:
    return await _in_project(session, access, ExperimentGroup, group_id)


async def get_experiment(
    session: AsyncSession, access: ProjectAccess, experiment_id: int
) -> Experiment:
    return await _in_project(session, access, Experiment, experiment_id)


def tensorboard_stmt(project_id: int, target: Target) -> Select[Any]:
    stmt = select(TensorboardJob).where(TensorboardJob.project_id == project_id)
    group_id = target.group.id if target.group else None
    experiment_id = target.experiment.id if target.experiment else None
    stmt = stmt.where(
        TensorboardJob.experiment_group_id.is_(None)
        if group_id is None
        else TensorboardJob.experiment_group_id == group_id
    )
    return stmt.where(
        TensorboardJob.experiment_id.is_(None)
        if experiment_id is None
        else TensorboardJob.experiment_id == experiment_id
    )


async def _last(session: AsyncSession, stmt: Select[Any], model: Any) -> Any:
    return await session.scalar(stmt.order_by(model.id.desc()).limit(1))


async def start_tensorboard(
    session: AsyncSession,
    access: ProjectAccess,
    user_id: int,
    *,
    target: Target,
    config: dict[str, Any] | None,
) -> tuple[TensorboardJob, bool]:
    """The live tensorboard of `target`, or a new one; True when created."""
    check_config(config)
    current = await _last(session, tensorboard_stmt(access.project.id, target), TensorboardJob)
    if current is not None and is_live(current):
        return current, False
    row = TensorboardJob(
        user_id=user_id,
        project_id=access.project.id,
        experiment_group_id=target.group.id if target.group else None,
        experiment_id=target.experiment.id if target.experiment else None,
        config=config,
        code_reference_id=access.project.code_reference_id,
    )
    session.add(row)
    await session.flush()
    await set_status(session, row, Status.CREATED)
    return row, True


async def stop_tensorboard(
    session: AsyncSession, access: ProjectAccess, *, target: Target
) -> TensorboardJob | None:
    rows = await session.scalars(tensorboard_stmt(access.project.id, target))
    last = None
    for row in rows:
        if is_live(row):
            row.stop_requested = True
            await set_status(session, row, Status.STOPPED, message="Stopped on request.")
            last = row
    return last


async def list_tensorboards(
    session: AsyncSession, access: ProjectAccess, params: ListParams
) -> tuple[int, list[TensorboardJob], str | None, str | None]:
    stmt = (
        select(TensorboardJob)
        .where(TensorboardJob.project_id == access.project.id)
        .order_by(TensorboardJob.updated_at.desc(), TensorboardJob.id.desc())
    )
    return await paginate(session, stmt, params)


async def start_notebook(
    session: AsyncSession, access: ProjectAccess, user_id: int, *, config: dict[str, Any] | None
) -> tuple[NotebookJob, bool]:
    check_config(config)
    stmt = select(NotebookJob).where(NotebookJob.project_id == access.project.id)
    current = await _last(session, stmt, NotebookJob)
    if current is not None and is_live(current):
        return current, False
    row = NotebookJob(
        user_id=user_id,
        project_id=access.project.id,
        config=config,
        code_reference_id=access.project.code_reference_id,
        token=secrets.token_hex(24),
    )
    session.add(row)
    await session.flush()
    await set_status(session, row, Status.CREATED)
    return row, True


@dataclass(frozen=True)
class NotebookStopped:
    """What a notebook stop did: the stopped row, the version its work became (local runtime),
    and the stop's status message (why no version was stored, when none was)."""

    row: NotebookJob | None
    ref: CodeReference | None = None
    message: str | None = None


async def stop_notebook(
    session: AsyncSession, settings: Settings, access: ProjectAccess, *, commit: bool
) -> NotebookStopped:
    """Stop the live notebook; with `commit`, its working copy becomes a new code version: here
    on the local runtime, later on Kubernetes (uploaded by the pod's preStop hook, stored by
    `receive_snapshot`; the answer then has no commit yet).

    The stop always happens: saving the work is done beside it, and an empty or unchanged
    workspace, or a failure to save, only shows in the status message (issue 15 item 3)."""
    rows = await session.scalars(
        select(NotebookJob).where(NotebookJob.project_id == access.project.id)
    )
    stopped = None
    for row in rows:
        if is_live(row):
            row.stop_requested = True
            row.commit_on_stop = commit
            await set_status(session, row, Status.STOPPED, message=STOPPED)
            stopped = row
    if stopped is None or not commit or settings.runtime == "kubernetes":
        return NotebookStopped(stopped, message=STOPPED if stopped else None)
    stopped.commit_on_stop = False  # taken here, once: the snapshot route has nothing to add
    ref, message = await _save_workspace(session, settings, access, stopped)
    await note_stop_outcome(session, stopped.id, message)
    return NotebookStopped(stopped, ref, message)


async def _save_workspace(
    session: AsyncSession, settings: Settings, access: ProjectAccess, row: NotebookJob
) -> tuple[CodeReference | None, str]:
    """The notebook's working copy as the project's new version, best effort: never raises
    (but for a cancellation), so that nothing it does can undo the stop."""
    workdir = notebook_workdir(settings, row.id)
    try:
        if not workdir.is_dir():
            return None, f"{STOPPED} {NOTHING_SAVED}"
        staged = await snapshot_directory(settings, access.project.id, workdir)
        # In a savepoint: a database error here must not take the stop down with it.
        async with session.begin_nested():
            return await _publish_snapshot(session, settings, access.project.id, staged)
    except Exception as exc:
        return None, save_failed_message(exc)


async def _publish_snapshot(
    session: AsyncSession, settings: Settings, project_id: int, staged: code_service.StagedVersion
) -> tuple[CodeReference | None, str]:
    """Publish `staged` unless it is the project's current code already (nothing to store)."""
    current = await session.scalar(
        select(CodeReference.commit)
        .join(Project, Project.code_reference_id == CodeReference.id)
        .where(Project.id == project_id)
    )
    if current == staged.commit:
        await code_service.discard_staged(staged)
        return None, f"{STOPPED} {UNCHANGED}"
    ref = await code_service.publish_version(session, settings, staged)
    return ref, f"{STOPPED} Its work was saved as version {ref.commit[:12]}."


def is_empty_archive(exc: BaseException) -> bool:
    """The staging of an archive with no file in it (an empty workspace). `stage_archive`
    re-raises the extractor's error as a 400 `from None`: the original stays in __context__."""
    return isinstance(exc, EmptyTarball) or isinstance(exc.__context__, EmptyTarball)


def save_failed_message(exc: BaseException) -> str:
    """The stop's status message for a snapshot that was not stored."""
    if is_empty_archive(exc):
        return f"{STOPPED} {NOTHING_SAVED}"
    reason = exc.message if isinstance(exc, PlxError) else f"{type(exc).__name__}: {exc}"
    return f"{STOPPED} Its work could not be saved: {reason}"


async def note_stop_outcome(session: AsyncSession, row_id: int, message: str) -> None:
    """Put what became of the work on the notebook's `stopped` status row (written by the stop,
    possibly in an earlier request: the upload of its pod comes after it on Kubernetes)."""
    latest = (
        select(NotebookJobStatus.id)
        .where(NotebookJobStatus.job_id == row_id, NotebookJobStatus.status == Status.STOPPED)
        .order_by(NotebookJobStatus.created_at.desc(), NotebookJobStatus.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    await session.execute(
        update(NotebookJobStatus)
        .where(NotebookJobStatus.id == latest)
        .values(message=message[:MESSAGE_MAX])
        .execution_options(synchronize_session=False)
    )


async def stop_message(session: AsyncSession, row: NotebookJob) -> str | None:
    """The message of the notebook's last status (e.g. what its stop did with the work)."""
    return await session.scalar(
        select(NotebookJobStatus.message)
        .where(NotebookJobStatus.job_id == row.id)
        .order_by(NotebookJobStatus.created_at.desc(), NotebookJobStatus.id.desc())
        .limit(1)
    )


async def get_notebook(
    session: AsyncSession, access: ProjectAccess, notebook_id: int
) -> NotebookJob:
    return await _in_project(session, access, NotebookJob, notebook_id)


def check_snapshot_caller(principal: Principal, access: ProjectAccess, row: NotebookJob) -> None:
    """The notebook's own run-scoped token (`create_run_token(kind="notebook")`), or a user who
    may write the project; any other run's token is refused."""
    if principal.is_run_scoped and not principal.may_act_on_run("notebook", row.id):
        raise PermissionDenied("A run token may only act on its own run.")
    if not access.can_write:
        raise PermissionDenied()


def snapshot_wanted(row: NotebookJob) -> bool:
    """Stopped on request with `commit`, and no snapshot stored for it yet."""
    return bool(row.stop_requested and row.last_status == Status.STOPPED and row.commit_on_stop)


async def _claim_snapshot(session: AsyncSession, row_id: int) -> bool:
    """Take the commit a stop owes, once: a conditional UPDATE, so of two concurrent uploads
    one gets it."""
    claimed = await session.execute(
        update(NotebookJob)
        .where(
            NotebookJob.id == row_id,
            NotebookJob.commit_on_stop.is_(True),
            NotebookJob.stop_requested.is_(True),
            NotebookJob.last_status == Status.STOPPED,
        )
        .values(commit_on_stop=False)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], claimed).rowcount == 1


async def receive_snapshot(
    session: AsyncSession, settings: Settings, row: NotebookJob, staged: code_service.StagedVersion
) -> CodeReference | None:
    """Publish an uploaded snapshot of a notebook's workspace as the project's new version, once:
    the row's `commit_on_stop` is claimed in the same transaction as the publication, so of two
    concurrent uploads one is stored and the other discarded (None). None too when the work is
    the project's current version already (nothing new to store)."""
    if not await _claim_snapshot(session, row.id):
        await code_service.discard_staged(staged)
        return None
    ref, message = await _publish_snapshot(session, settings, row.project_id, staged)
    await note_stop_outcome(session, row.id, message)
    return ref


async def snapshot_not_stored(session: AsyncSession, row: NotebookJob, exc: BaseException) -> bool:
    """An upload that could not be staged. Its stop stays done; the reason goes on its status
    message. An empty workspace is nothing to save, and settles the commit (True); for any other
    failure the commit stays owed, so a retry can still store the work (False)."""
    if is_empty_archive(exc):
        if await _claim_snapshot(session, row.id):
            await note_stop_outcome(session, row.id, save_failed_message(exc))
        return True
    await note_stop_outcome(session, row.id, save_failed_message(exc))
    return False


def _pack(source: Path, archive: Path) -> None:
    """A .tar.gz of `source` with relative names; only files, directories and inside links."""
    root = os.path.realpath(source)

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if any(part in SNAPSHOT_EXCLUDE for part in Path(info.name).parts):
            return None
        if info.isdev():
            return None
        if info.issym():
            path = os.path.join(root, info.name)
            resolved = os.path.realpath(os.path.join(os.path.dirname(path), info.linkname))
            if not (resolved == root or resolved.startswith(root + os.sep)):
                return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for entry in sorted(os.listdir(source)):
            tar.add(os.path.join(source, entry), arcname=entry, filter=keep)


async def snapshot_directory(
    settings: Settings, project_id: int, source: Path
) -> code_service.StagedVersion:
    """Pack a working directory and stage it exactly as an upload (same checks, same ids)."""
    scratch = code_service.repos_dir(settings, project_id) / f".incoming-{secrets.token_hex(8)}"
    await anyio.to_thread.run_sync(lambda: scratch.mkdir(parents=True))
    try:
        archive = scratch / "code.tar.gz"
        await anyio.to_thread.run_sync(_pack, source, archive)
        return await code_service.stage_archive(settings, project_id, scratch)
    except BaseException:
        await anyio.to_thread.run_sync(remove_tree, scratch)
        raise


# -- what the reconciler needs ------------------------------------------------------------------


def plugin_dir(settings: Settings, kind: str, run_id: int) -> Path:
    return run_dir(settings, kind, run_id)


def notebook_workdir(settings: Settings, run_id: int) -> Path:
    return plugin_dir(settings, "notebook", run_id) / "work"


def find_executable(kind: str) -> str | None:
    """The plugin's program: next to the server's interpreter first, then on PATH."""
    name = EXTRAS[kind][0]
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def missing_message(kind: str) -> str:
    program, extra = EXTRAS[kind]
    return f"`{program}` is not installed on the server: {extra}"


def prepare_notebook_workdir(settings: Settings, run_id: int, checkout: Path | None) -> Path:
    """A writable copy of the project's code (once: a restart keeps the notebook's edits)."""
    workdir = notebook_workdir(settings, run_id)
    if workdir.is_dir():
        return workdir
    scratch = workdir.with_name(f".work-{secrets.token_hex(4)}")
    if checkout is not None:
        shutil.copytree(checkout, scratch, symlinks=True)
        for dirpath, _dirs, files in os.walk(scratch):
            os.chmod(dirpath, 0o755)
            for name in files:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode | 0o200)
    else:
        scratch.mkdir(parents=True)
    os.rename(scratch, workdir)
    return workdir


async def last_notebook(session: AsyncSession, access: ProjectAccess) -> NotebookJob:
    stmt = select(NotebookJob).where(NotebookJob.project_id == access.project.id)
    row = await _last(session, stmt, NotebookJob)
    if row is None:
        raise NotFound()
    return row


async def upload_snapshot(
    session: AsyncSession,
    settings: Settings,
    access: ProjectAccess,
    principal: Principal,
    notebook_id: int,
    headers: Mapping[str, str],
    stream: AsyncIterator[bytes],
) -> CodeReference | None:
    """A stopped notebook's workspace uploaded by its pod: the new code version, or None when
    the notebook was not stopped with `commit`, its work is stored already, or it was empty."""
    row = await get_notebook(session, access, notebook_id)
    check_snapshot_caller(principal, access, row)
    if not snapshot_wanted(row):
        return None
    # End the read transaction before the body streams in (as the repo upload does): on SQLite
    # every transaction holds the write lock, and an upload may take seconds.
    await session.commit()
    length = headers.get("content-length")
    try:
        staged = await code_service.stage_upload(
            settings,
            access.project.id,
            content_type=headers.get("content-type", ""),
            content_length=int(length) if length and length.isdigit() else None,
            stream=stream,
        )
    except PlxError as exc:
        # The notebook is stopped whatever its upload holds: the outcome goes on its status
        # message (committed), an empty workspace is nothing to save, anything else is refused.
        settled = await snapshot_not_stored(session, row, exc)
        await session.commit()
        if settled:
            return None
        raise
    return await receive_snapshot(session, settings, row, staged)
