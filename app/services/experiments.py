"""Experiments: create (managed or tracking-only), list with flags, update, clone, replicas."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.errors import BadRequest, NotFound
from app.logic.polyaxonfile import ExperimentSpec, experiment_spec_for
from app.logic.query import Condition, FieldKind
from app.logic.statuses import Status
from app.models import Experiment, ExperimentGroup, ExperimentJob, User
from app.schemas.common import Page
from app.schemas.experiments import CloneBody, ExperimentFilters, ExperimentOut
from app.services.groups import starts_experiments
from app.services.jobs import ensure_build, parse_config
from app.services.listing import FieldMap, ListParams, apply_query, apply_sort, paginate
from app.services.projects import ProjectAccess
from app.services.runs import heartbeat, insert_run, list_statuses, row_context
from app.services.statuses import add_first_status


async def create_experiment(
    session: AsyncSession,
    access: ProjectAccess,
    user: User,
    *,
    config: str | dict[str, Any],
    declarations: dict[str, Any] | None = None,
    name: str | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
    group_id: int | None = None,
    original: Experiment | None = None,
    cloning_strategy: str | None = None,
    run_env: dict[str, Any] | None = None,
) -> Experiment:
    """A new experiment; `run_env` as the tracking client's `create()` sends it."""
    parsed = parse_config(config, "experiment")
    rendered, merged = experiment_spec_for(parsed, declarations or {})
    spec = cast(ExperimentSpec, rendered.spec)  # experiment_spec_for renders an experiment
    group = None
    if group_id is not None:
        group = await session.scalar(
            select(ExperimentGroup).where(
                ExperimentGroup.id == group_id, ExperimentGroup.project_id == access.project.id
            )
        )
        if group is None:
            raise BadRequest(f"experiment_group: no group {group_id} in this project")
    managed = spec.run is not None
    build_job = None
    if spec.build is not None and spec.run is not None:
        build_job = await ensure_build(
            session, access, user, rendered.raw.get("build") or parsed.raw.get("build")
        )
    all_tags = list(dict.fromkeys([*(tags or []), *parsed.tags])) or None
    exp = Experiment(
        user_id=user.id,
        project_id=access.project.id,
        experiment_group_id=group_id,
        name=name,
        description=description,
        tags=all_tags,
        config=parsed.to_dict(),
        declarations=merged or None,
        resources=spec.environment.resources.flat()
        if spec.environment and spec.environment.resources
        else None,
        # In a group that starts its experiments, a new one (a restart, resume or copy) waits,
        # held, for the group step to release it within the group's concurrency (v0 #706).
        is_managed=managed and not (group is not None and starts_experiments(group)),
        build_job_id=build_job.id if build_job else None,
        code_reference_id=access.project.code_reference_id,
        original_id=original.id if original else None,
        cloning_strategy=cloning_strategy,
    )
    if cloning_strategy == "resume" and original is not None:
        exp.run_env = {"outputs_from": (original.run_env or {}).get("outputs_from", original.id)}
    if run_env is not None:
        exp.run_env = run_env
    exp.last_status = Status.CREATED  # goes in with the INSERT, its history row beside it
    exp = await insert_run(session, "experiment", exp, name)
    jobs = []
    if managed:
        for replica in spec.replicas():
            env = replica.environment
            jobs.append(
                ExperimentJob(
                    experiment_id=exp.id,
                    role=replica.role,
                    replica_index=replica.index,
                    resources=env.resources.flat() if env.resources else None,
                    last_status=Status.CREATED,
                )
            )
        session.add_all(jobs)
        await session.flush()  # one INSERT for every replica
        for job in jobs:
            add_first_status(session, job)
    await session.flush()
    return exp


def _independent(cond: Condition) -> ColumnElement[bool]:
    truthy = str(cond.values[0]).lower() in ("true", "1", "yes")
    col = Experiment.experiment_group_id
    return col.is_(None) if truthy else col.is_not(None)


EXPERIMENT_FIELDS = FieldMap.for_run(
    Experiment,
    {
        "group": (FieldKind.VALUE, Experiment.experiment_group_id),
        "build": (FieldKind.VALUE, Experiment.build_job_id),
    },
    json_fields={
        "metric": (FieldKind.SCALAR, Experiment.last_metric),
        "declarations": (FieldKind.VALUE, Experiment.declarations),
    },
    json_sortable={"metric": Experiment.last_metric},
    custom={"independent": _independent},
)


async def list_experiments(
    session: AsyncSession, access: ProjectAccess, params: ListParams, filters: ExperimentFilters
) -> tuple[int, list[Experiment], str | None, str | None]:
    group, independent = filters.group, filters.independent
    if group is not None and independent:
        raise BadRequest("group and independent cannot be used together.")
    stmt = select(Experiment).where(Experiment.project_id == access.project.id)
    if group is not None:
        stmt = stmt.where(Experiment.experiment_group_id == group)
    if independent:
        stmt = stmt.where(Experiment.experiment_group_id.is_(None))
    stmt = apply_query(stmt, params.query, EXPERIMENT_FIELDS)
    return await paginate(session, apply_sort(stmt, params.sort, EXPERIMENT_FIELDS), params)


async def experiment_page(
    session: AsyncSession,
    access: ProjectAccess,
    viewer: User,
    params: ListParams,
    filters: ExperimentFilters,
) -> Page[ExperimentOut]:
    """A page of the project's experiments as the viewer sees them (`filters.only` narrows the
    rows)."""
    found = await list_experiments(session, access, params, filters)
    ctx = await row_context(session, access.unique_name, found[1], viewer)
    only = filters.only
    return Page[ExperimentOut].of(found, lambda row: ExperimentOut.from_row(row, ctx, only))


async def clone_experiment(
    session: AsyncSession,
    access: ProjectAccess,
    user: User,
    original: Experiment,
    *,
    strategy: str,
    body: CloneBody | None,
) -> Experiment:
    """restart / resume / copy: a new experiment from the original's file patched by the body's
    `config`."""
    config = body.config if body else None
    description = body.description if body else None
    base = dict(original.config or {})
    if config:
        base = _deep_merge(base, config)
    return await create_experiment(
        session,
        access,
        user,
        config=base,
        declarations=None if config else original.declarations,
        description=description if description is not None else original.description,
        tags=original.tags,
        group_id=original.experiment_group_id,
        original=original,
        cloning_strategy=strategy,
    )


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


async def list_replicas(
    session: AsyncSession, exp: Experiment, params: ListParams
) -> tuple[int, list[ExperimentJob], str | None, str | None]:
    stmt = (
        select(ExperimentJob)
        .where(ExperimentJob.experiment_id == exp.id)
        .order_by(ExperimentJob.id.asc())
    )
    return await paginate(session, stmt, params)


def owes_reconcile(exp: Experiment) -> bool:
    """A tracking-only experiment (no `run`) never starts: no reconcile pass is owed for it."""
    return exp.is_managed or exp.experiment_group_id is not None


async def get_replica(session: AsyncSession, exp: Experiment, job_id: int) -> ExperimentJob:
    job = await session.scalar(
        select(ExperimentJob).where(
            ExperimentJob.id == job_id, ExperimentJob.experiment_id == exp.id
        )
    )
    if job is None:
        raise NotFound()
    return job


async def list_replica_statuses(
    session: AsyncSession, exp: Experiment, job_id: int, params: ListParams
) -> tuple[int, list[Any], str | None, str | None]:
    return await list_statuses(session, await get_replica(session, exp, job_id), params)


async def replica_heartbeat(session: AsyncSession, exp: Experiment, job_id: int) -> None:
    """A replica's heartbeat counts for its experiment."""
    await get_replica(session, exp, job_id)
    await heartbeat(session, exp)
