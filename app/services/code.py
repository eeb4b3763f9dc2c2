"""Project code versions: streamed uploads, safe extraction, immutable content-addressed storage.

On disk, one directory per version, written once and never changed:

    PLX_DATA_DIR/repos/<project_id>/<commit>/code/         the extracted tree (read-only)
    PLX_DATA_DIR/repos/<project_id>/<commit>/code.tar.gz   the tarball as uploaded

An upload is streamed into ``repos/<project_id>/.incoming-<random>/``, extracted and checked
there, then renamed to ``<commit>`` in one step, so a reader sees a complete version or none, and
a rejected upload leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import BadRequest, NotFound, PayloadTooLarge, PermissionDenied, PlxError
from app.logic.statuses import Status as S
from app.logic.tarballs import Limits, TarballError, extract_tarball, remove_tree
from app.models import CodeReference, NotebookJob, Project, User
from app.models.base import Base
from app.services.projects import ProjectAccess
from app.services.run_tokens import own_code_version
from app.services.users import Principal

UPLOAD_FIELD = "repo"
WRITE_BUFFER = 1024 * 1024
# Room for the multipart framing and a small `json` part around the tarball itself.
MULTIPART_OVERHEAD = 64 * 1024
NOTEBOOK_LIVE = frozenset({S.CREATED, S.BUILDING, S.SCHEDULED, S.RUNNING, S.WARNING, S.UNKNOWN})


@dataclass(frozen=True)
class StagedVersion:
    """An upload extracted and checked in its scratch directory, not yet published."""

    project_id: int
    scratch: Path
    commit: str
    size_bytes: int
    num_files: int


def repos_dir(settings: Settings, project_id: int) -> Path:
    return Path(settings.data_dir).resolve() / "repos" / str(project_id)


def version_dir(settings: Settings, project_id: int, commit: str) -> Path:
    return repos_dir(settings, project_id) / commit


async def check_no_live_notebook(session: AsyncSession, project_id: int) -> None:
    """A running notebook's working copy would diverge from new code (as in v0): 403."""
    notebooks = select(NotebookJob.last_status).where(NotebookJob.project_id == project_id)
    newest = await session.scalar(notebooks.order_by(NotebookJob.id.desc()).limit(1))
    if newest in NOTEBOOK_LIVE:
        raise PermissionDenied(
            "The project's notebook is running: you must stop it before uploading code."
        )


class _Multipart:
    """Streams the `repo` part of a multipart body into a file; other parts are dropped."""

    def __init__(self, boundary: bytes, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buffer = bytearray()
        self.repo_bytes = 0
        self.repo_parts = 0
        self.finished = False
        self._in_repo = False
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_cb,
                "on_header_value": self._header_value_cb,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self._in_repo = False
        self._disposition = b""

    def _header_field_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _kind, options = parse_options_header(self._disposition)
        self._in_repo = options.get(b"name") == UPLOAD_FIELD.encode()
        if self._in_repo:
            self.repo_parts += 1

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_repo and self.repo_parts == 1:
            self.repo_bytes += end - start
            if self.repo_bytes <= self.max_bytes:
                self.buffer += data[start:end]

    def _end(self) -> None:
        self.finished = True


def _too_large(settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than the limit of {settings.max_upload_bytes} bytes "
        "(PLX_MAX_UPLOAD_BYTES)."
    )


async def _receive(
    stream: AsyncIterator[bytes], content_type: str, target: Path, settings: Settings
) -> None:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadRequest(
            "repo: expected a multipart/form-data body with the tarball in the `repo` field."
        )
    body = _Multipart(boundary, settings.max_upload_bytes)
    total = 0
    limit = settings.max_upload_bytes + MULTIPART_OVERHEAD
    async with await anyio.open_file(target, "wb") as out:
        async for chunk in stream:
            total += len(chunk)
            if total > limit:
                raise _too_large(settings)
            try:
                body.parser.write(chunk)
            except MultipartParseError as exc:
                raise BadRequest(f"repo: malformed multipart body ({exc}).") from None
            if body.repo_bytes > settings.max_upload_bytes:
                raise _too_large(settings)
            if len(body.buffer) >= WRITE_BUFFER:
                await out.write(bytes(body.buffer))
                body.buffer.clear()
        if body.buffer:
            await out.write(bytes(body.buffer))
            body.buffer.clear()
    if not body.finished:
        raise BadRequest("repo: the multipart body is incomplete.")
    if body.repo_parts == 0:
        raise BadRequest("repo: this field is required (a .tar.gz of the code).")
    if body.repo_parts > 1:
        raise BadRequest("repo: send exactly one tarball.")


async def stage_upload(
    settings: Settings,
    project_id: int,
    *,
    content_type: str,
    content_length: int | None,
    stream: AsyncIterator[bytes],
) -> StagedVersion:
    """Stream the body to disk (never whole in memory), then check and extract it in a thread."""
    if content_length is not None and content_length > (
        settings.max_upload_bytes + MULTIPART_OVERHEAD
    ):
        raise _too_large(settings)
    scratch = repos_dir(settings, project_id) / f".incoming-{secrets.token_hex(8)}"
    await anyio.to_thread.run_sync(lambda: scratch.mkdir(parents=True))
    try:
        await _receive(stream, content_type, scratch / "code.tar.gz", settings)
        return await stage_archive(settings, project_id, scratch)
    except BaseException:
        await anyio.to_thread.run_sync(remove_tree, scratch)
        raise


async def upload_version(
    session: AsyncSession,
    settings: Settings,
    access: ProjectAccess,
    *,
    headers: Mapping[str, str],
    stream: AsyncIterator[bytes],
) -> CodeReference:
    """The request body (multipart field `repo`) as the project's new current code version."""
    await check_no_live_notebook(session, access.project.id)
    # End the read transaction before the body streams in: on SQLite every transaction holds
    # the write lock (BEGIN IMMEDIATE), and an upload may take seconds.
    await session.commit()
    length = headers.get("content-length")
    staged = await stage_upload(
        settings,
        access.project.id,
        content_type=headers.get("content-type", ""),
        content_length=int(length) if length and length.isdigit() else None,
        stream=stream,
    )
    return await publish_version(session, settings, staged)


async def stage_archive(settings: Settings, project_id: int, scratch: Path) -> StagedVersion:
    """Check and extract `scratch/code.tar.gz` into `scratch/code` (the caller cleans up)."""
    limits = Limits(
        max_uncompressed_bytes=settings.max_upload_uncompressed_bytes,
        max_files=settings.max_upload_files,
    )
    try:
        result = await anyio.to_thread.run_sync(
            extract_tarball, scratch / "code.tar.gz", scratch / "code", limits
        )
    except TarballError as exc:
        error = PayloadTooLarge if exc.status_code == 413 else BadRequest
        raise error(f"repo: {exc.message}") from None
    return StagedVersion(
        project_id=project_id,
        scratch=scratch,
        commit=result.commit,
        size_bytes=result.size_bytes,
        num_files=result.num_files,
    )


def _move_into_place(staged: StagedVersion, final: Path) -> None:
    if final.exists():
        # Same content uploaded before: content addressing makes the existing copy identical.
        remove_tree(staged.scratch)
        return
    try:
        os.rename(staged.scratch, final)
    except OSError:
        # A concurrent upload of the same content won the rename.
        if not final.exists():
            raise
        remove_tree(staged.scratch)


async def discard_staged(staged: StagedVersion) -> None:
    await anyio.to_thread.run_sync(remove_tree, staged.scratch)


async def publish_version(
    session: AsyncSession, settings: Settings, staged: StagedVersion
) -> CodeReference:
    """Make the staged version the project's current code (files first, then the rows)."""
    project = await session.get(Project, staged.project_id, populate_existing=True)
    if project is None:
        await discard_staged(staged)
        raise NotFound()
    try:
        await check_no_live_notebook(session, project.id)
    except PermissionDenied:
        await discard_staged(staged)
        raise
    ref = await _get_reference(session, project.id, staged.commit)
    pruned: list[CodeReference] = []
    if ref is None:
        pruned = await _check_quota_and_retention(session, settings, project, staged)
    final = version_dir(settings, staged.project_id, staged.commit)
    await anyio.to_thread.run_sync(_move_into_place, staged, final)
    if ref is None:
        ref = CodeReference(
            project_id=project.id,
            commit=staged.commit,
            size_bytes=staged.size_bytes,
            num_files=staged.num_files,
        )
        session.add(ref)
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            ref = await _get_reference(session, project.id, staged.commit)
            if ref is None:
                raise
    project.code_reference_id = ref.id
    await _delete_versions(session, settings, pruned)
    await session.flush()
    return ref


# -- quotas and retention (PLX_USER_CODE_QUOTA_*, PLX_CODE_VERSIONS_KEEP) ---------------------


def _models_using_code() -> list[Any]:
    """Every table whose rows run a code version (experiments, groups, jobs, builds, plugins)."""
    return [
        mapper.class_
        for mapper in Base.registry.mappers
        if "code_reference_id" in mapper.columns and mapper.class_ is not Project
    ]


async def _versions_in_use(session: AsyncSession, project_id: int, ids: list[int]) -> set[int]:
    used: set[int] = set()
    for model in _models_using_code():
        used.update(
            await session.scalars(
                select(model.code_reference_id)
                .where(model.project_id == project_id, model.code_reference_id.in_(ids))
                .distinct()
            )
        )
    return used


async def _retention_victims(
    session: AsyncSession, settings: Settings, project: Project
) -> list[CodeReference]:
    """The versions to drop so that, with the new one, `code_versions_keep` remain; a version
    any run, group or plugin of the project uses is never one of them."""
    keep = settings.code_versions_keep
    if not keep:
        return []
    older = list(
        await session.scalars(
            select(CodeReference)
            .where(CodeReference.project_id == project.id)
            .order_by(CodeReference.created_at.desc(), CodeReference.id.desc())
            .offset(keep - 1)
        )
    )
    if not older:
        return []
    used = await _versions_in_use(session, project.id, [r.id for r in older])
    return [r for r in older if r.id not in used]


async def _check_quota_and_retention(
    session: AsyncSession, settings: Settings, project: Project, staged: StagedVersion
) -> list[CodeReference]:
    """Refuse (413, nothing written) a new version over the owner's quota, counted after the
    retention this upload triggers; return the versions that retention drops."""
    victims = await _retention_victims(session, settings, project)
    max_versions, max_bytes = settings.user_code_quota_versions, settings.user_code_quota_bytes
    if not (max_versions or max_bytes):
        return victims
    # Concurrent uploads of one owner count one after the other (Postgres; SQLite transactions
    # are serialised already).
    await session.execute(select(User.id).where(User.id == project.user_id).with_for_update())
    total_size = func.coalesce(func.sum(CodeReference.size_bytes), 0)
    count, size = (
        await session.execute(
            select(func.count(CodeReference.id), total_size)
            .join(Project, Project.id == CodeReference.project_id)
            .where(Project.user_id == project.user_id)
        )
    ).one()
    count = count - len(victims) + 1
    size = int(size) - sum(v.size_bytes for v in victims) + staged.size_bytes
    if max_versions and count > max_versions:
        await discard_staged(staged)
        raise PayloadTooLarge(
            f"repo: the project owner's code versions would number {count}, over the quota of "
            f"{max_versions} (PLX_USER_CODE_QUOTA_VERSIONS); delete projects or set "
            "PLX_CODE_VERSIONS_KEEP."
        )
    if max_bytes and size > max_bytes:
        await discard_staged(staged)
        raise PayloadTooLarge(
            f"repo: the project owner's code versions would take {size} bytes, over the quota of "
            f"{max_bytes} (PLX_USER_CODE_QUOTA_BYTES)."
        )
    return victims


async def _delete_versions(
    session: AsyncSession, settings: Settings, refs: list[CodeReference]
) -> None:
    """Drop the rows now; the files once the transaction is committed (a rollback keeps both)."""
    if not refs:
        return
    dirs = [version_dir(settings, r.project_id, r.commit) for r in refs]
    await session.execute(delete(CodeReference).where(CodeReference.id.in_([r.id for r in refs])))

    def remove_files() -> None:
        loop = asyncio.get_running_loop()
        for path in dirs:
            loop.run_in_executor(None, remove_tree, path)

    session.info.setdefault("after_commit", []).append(remove_files)


async def _get_reference(
    session: AsyncSession, project_id: int, commit: str
) -> CodeReference | None:
    return await session.scalar(
        select(CodeReference).where(
            CodeReference.project_id == project_id, CodeReference.commit == commit
        )
    )


async def current_reference(session: AsyncSession, project: Project) -> CodeReference | None:
    if project.code_reference_id is None:
        return None
    return await session.get(CodeReference, project.code_reference_id)


async def list_references(session: AsyncSession, project: Project) -> list[CodeReference]:
    rows = await session.scalars(
        select(CodeReference)
        .where(CodeReference.project_id == project.id)
        .order_by(CodeReference.created_at.desc(), CodeReference.id.desc())
    )
    return list(rows)


async def resolve_reference(
    session: AsyncSession, project: Project, commit: str | None
) -> CodeReference:
    """The version named by `commit` (a full id or a unique prefix of 7+), else the current."""
    if not commit:
        ref = await current_reference(session, project)
        if ref is None:
            raise NotFound("This project has no code yet.")
        return ref
    commit = commit.strip().lower()
    if len(commit) < 7 or not all(c in "0123456789abcdef" for c in commit):
        raise BadRequest("commit: expected a version id (at least 7 hex characters).")
    rows = list(
        await session.scalars(
            select(CodeReference)
            .where(CodeReference.project_id == project.id, CodeReference.commit.startswith(commit))
            .limit(2)
        )
    )
    if len(rows) != 1:
        raise NotFound() if not rows else BadRequest(f"commit: `{commit}` is ambiguous.")
    return rows[0]


async def downloadable_reference(
    session: AsyncSession, principal: Principal, project: Project, commit: str | None
) -> CodeReference:
    """The version to download; a run token gets only the one its run runs (403 otherwise)."""
    if principal.is_run_scoped:
        commit = await own_code_version(session, principal, project.id, commit)
    return await resolve_reference(session, project, commit)


@dataclass(frozen=True)
class RepoState:
    current: CodeReference | None
    versions: list[CodeReference]


async def repo_state(session: AsyncSession, project: Project) -> RepoState:
    return RepoState(
        await current_reference(session, project), await list_references(session, project)
    )


def tarball_path(settings: Settings, ref: CodeReference) -> Path:
    path = version_dir(settings, ref.project_id, ref.commit) / "code.tar.gz"
    if not path.is_file():
        raise PlxError(f"The files of code version {ref.commit} are missing on the server.")
    return path


async def code_checkout_path(
    settings: Settings, project_id: int, code_reference: CodeReference | str
) -> Path:
    """The read-only tree of one code version, for a run to start in.

    Shared by every run of that version: treat it as read-only (files and directories are
    0444/0555; a run that must write next to its code should copy it). Rebuilt from the stored
    tarball if the tree is missing.
    """
    commit = code_reference if isinstance(code_reference, str) else code_reference.commit
    base = version_dir(settings, project_id, commit)
    tree = base / "code"
    if tree.is_dir():
        return tree
    archive = base / "code.tar.gz"
    if not archive.is_file():
        raise PlxError(f"The files of code version {commit} are missing on the server.")
    scratch = base.parent / f".rebuild-{secrets.token_hex(8)}"
    limits = Limits(
        max_uncompressed_bytes=settings.max_upload_uncompressed_bytes,
        max_files=settings.max_upload_files,
    )
    await anyio.to_thread.run_sync(extract_tarball, archive, scratch, limits)

    def _place() -> None:
        try:
            os.rename(scratch, tree)
        except OSError:
            remove_tree(scratch)
            if not tree.is_dir():
                raise

    await anyio.to_thread.run_sync(_place)
    return tree


async def prune_orphan_repos(session: AsyncSession, settings: Settings) -> list[int]:
    """Remove the repo directories of deleted projects (and stale scratch dirs of theirs)."""
    root = Path(settings.data_dir).resolve() / "repos"
    if not root.is_dir():
        return []
    on_disk = [int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
    if not on_disk:
        return []
    alive = set(await session.scalars(select(Project.id).where(Project.id.in_(on_disk))))
    gone = [pid for pid in on_disk if pid not in alive]
    for pid in gone:
        await anyio.to_thread.run_sync(remove_tree, root / str(pid))
    return gone


def _copy_writable(source: Path, target: Path) -> None:
    """Copy a read-only version tree into a run's own writable working directory."""
    scratch = target.with_name(f".{target.name}-{secrets.token_hex(4)}")
    shutil.copytree(source, scratch, copy_function=shutil.copyfile, symlinks=True)
    for root, dirs, _files in os.walk(scratch):
        os.chmod(root, 0o755)
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
    try:
        os.rename(scratch, target)
    except OSError:
        remove_tree(scratch)  # a concurrent pass placed it first
        if not target.is_dir():
            raise


async def run_workdir(
    settings: Settings, project_id: int, code_reference: CodeReference, run_dir: Path
) -> Path:
    """The run's own working directory: a writable copy of *its* code version (made once).

    A later upload never changes it, and nothing a run writes reaches the shared version.
    """
    target = run_dir / "code"
    if target.is_dir():
        return target
    checkout = await code_checkout_path(settings, project_id, code_reference)
    run_dir.mkdir(parents=True, exist_ok=True)
    await anyio.to_thread.run_sync(_copy_writable, checkout, target)
    return target
