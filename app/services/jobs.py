"""Jobs and builds: create (with build de-duplication), list, restart, counters."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest
from app.kinds import BUILD, JOB, KINDS, Kind
from app.logic.errors import SpecError
from app.logic.polyaxonfile import parse_polyaxonfile
from app.logic.query import FieldKind
from app.logic.statuses import Status
from app.models import BuildJob, CodeReference, Experiment, Job, User
from app.services.listing import FieldMap, ListParams, apply_query, apply_sort, paginate
from app.services.projects import ProjectAccess
from app.services.runs import flush_unique_name
from app.services.statuses import set_status


def parse_config(config: str | dict[str, Any], kind: str) -> Any:
    """The validated polyaxonfile of a run body (`config` as YAML text or object)."""
    try:
        return parse_polyaxonfile(config, expected_kind=kind)
    except SpecError:
        raise
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"config: {exc}") from None


def build_config_hash(build: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(build, sort_keys=True).encode()).hexdigest()


async def ensure_build(
    session: AsyncSession, access: ProjectAccess, user: User, build: dict[str, Any]
) -> BuildJob:
    """The build for (project, build config, code version): reused unless it failed/stopped."""
    project = access.project
    config_hash = build_config_hash(build)
    code_ref = project.code_reference_id
    stmt = select(BuildJob).where(
        BuildJob.project_id == project.id,
        BuildJob.config_hash == config_hash,
        BuildJob.last_status.not_in([Status.FAILED, Status.STOPPED]),
    )
    stmt = stmt.where(
        BuildJob.code_reference_id.is_(None)
        if code_ref is None
        else BuildJob.code_reference_id == code_ref
    )
    existing = await session.scalar(stmt.order_by(BuildJob.id.desc()).limit(1))
    if existing is not None:
        return existing
    commit = None
    if code_ref is not None:
        commit = await session.scalar(
            select(CodeReference.commit).where(CodeReference.id == code_ref)
        )
    row = BuildJob(
        user_id=user.id,
        project_id=project.id,
        config={"version": 1, "kind": "build", "build": build},
        config_hash=config_hash,
        code_reference_id=code_ref,
        commit=commit,
        dockerfile=build.get("dockerfile"),
        image=build.get("image"),
    )
    session.add(row)
    await session.flush()
    await set_status(session, row, Status.CREATED)
    return row


async def create_job(
    session: AsyncSession,
    access: ProjectAccess,
    user: User,
    *,
    kind: str,
    config: str | dict[str, Any],
    name: str | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
    original: Job | None = None,
    cloning_strategy: str | None = None,
) -> Any:
    parsed = parse_config(config, kind)
    stored = parsed.to_dict()
    tags = list(dict.fromkeys([*(tags or []), *parsed.tags])) or None
    common = {
        "user_id": user.id,
        "project_id": access.project.id,
        "name": name,
        "description": description,
        "tags": tags,
        "config": stored,
        "code_reference_id": access.project.code_reference_id,
    }
    if kind == "build":
        build = stored.get("build") or {}
        row: Any = BuildJob(
            **common,
            config_hash=build_config_hash(build),
            dockerfile=build.get("dockerfile"),
            image=build.get("image"),
        )
    else:
        build_job = await ensure_build(session, access, user, stored["build"])
        row = Job(
            **common,
            build_job_id=build_job.id,
            original_id=original.id if original else None,
            cloning_strategy=cloning_strategy,
        )
    session.add(row)
    await flush_unique_name(session, kind, name)
    await set_status(session, row, Status.CREATED)
    return row


def _fields(model: Any) -> FieldMap:
    build = {"build": (FieldKind.VALUE, Job.build_job_id)} if model is Job else None
    return FieldMap.for_run(model, build)


FIELD_MAPS = {k.kind.value: _fields(k.model) for k in (JOB, BUILD)}


async def list_jobs(
    session: AsyncSession, access: ProjectAccess, kind: str, params: ListParams
) -> tuple[int, list[Any], str | None, str | None]:
    model = KINDS[Kind(kind)].model
    fmap = FIELD_MAPS[kind]
    stmt = select(model).where(model.project_id == access.project.id)
    stmt = apply_query(stmt, params.query, fmap)
    return await paginate(session, apply_sort(stmt, params.sort, fmap), params)


async def clone_job(
    session: AsyncSession, access: ProjectAccess, user: User, original: Job, strategy: str
) -> Job:
    """A new job from the original's file (its restart)."""
    row: Job = await create_job(
        session,
        access,
        user,
        kind=JOB.kind,
        config=original.config or {},
        description=original.description,
        tags=original.tags,
        original=original,
        cloning_strategy=strategy,
    )
    return row


async def detail_counts(session: AsyncSession, row: Any) -> dict[str, int]:
    """What a run's detail counts besides its own columns: a build's jobs and experiments."""
    return await build_counts(session, row) if isinstance(row, BuildJob) else {}


async def build_counts(session: AsyncSession, build: BuildJob) -> dict[str, int]:
    return {
        "num_jobs": int(
            await session.scalar(select(func.count()).where(Job.build_job_id == build.id)) or 0
        ),
        "num_experiments": int(
            await session.scalar(select(func.count()).where(Experiment.build_job_id == build.id))
            or 0
        ),
    }
