"""Experiment groups: validation and planning, CRUD, counters, stop, and sweep materialisation.

The API and the reconciler share these functions. Experiments of a group are keyed by
(group, suggestion_index) under a unique constraint, so materialising is idempotent: a batch that
races or repeats inserts nothing twice.

Concurrency is enforced by *releasing* experiments: a group's experiment is created with
`is_managed=False` (held, the run step ignores it) and the group step flips `is_managed=True` on at
most `concurrency - occupied` of them per pass, where occupied counts released experiments that
are not done. A group file without `run` has nothing to start: its experiments stay held
(tracking-only, reported by their clients).

Restarts, resumes and copies of a group's experiment (and experiments created in a group through
the API) join the group without a suggestion index, so they never count against the plan nor
collide with UNIQUE(group, suggestion_index); they are held like the planned ones and released in
id order within the same concurrency (v0 started them at once, #706). The group's `succeeded`
waits for them, and a group that is already over still releases its held clones.

Row locks follow one order: the group, then its experiments by ascending id (bulk updates lock
through an ordered FOR NO KEY UPDATE subquery), then an experiment's jobs.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.errors import BadRequest, NotFound
from app.logic.content import parse_content
from app.logic.errors import SpecError
from app.logic.hptuning import HPTuningConfig
from app.logic.polyaxonfile import PolyaxonFile, experiment_spec_for, parse_polyaxonfile
from app.logic.query import FieldKind
from app.logic.search import (
    Suggestion,
    SuggestResult,
    Trial,
    current_iteration,
    make_search,
    suggest,
)
from app.logic.statuses import rules_for
from app.logic.sweep_plan import SweepPlan, plan_sweep
from app.models import (
    Bookmark,
    Experiment,
    ExperimentGroup,
    ExperimentGroupStatus,
    ExperimentJob,
    ExperimentJobStatus,
    ExperimentMetric,
    ExperimentStatus,
    GroupDecision,
    Project,
    TensorboardJob,
    User,
)
from app.models.base import new_uuid, utcnow
from app.services.listing import FieldMap, ListParams, apply_query, apply_sort, paginate
from app.services.projects import PLUGIN_RUNNING, ProjectAccess
from app.services.statuses import lock_row, set_status
from app.services.unique_names import unique_name
from app.services.users import delete_run_tokens

EXPERIMENT_RULES = rules_for("experiment")
PENDING = tuple(sorted(EXPERIMENT_RULES.pending))
RUNNING = tuple(sorted(EXPERIMENT_RULES.running))
DONE = tuple(sorted(EXPERIMENT_RULES.done))
GROUP_ACTIVE = ("created", "running")
BATCH_SIZE = 1000


# ----------------------------------------------------------------------------------- content


@dataclass(frozen=True)
class CheckedGroup:
    """A validated group file with its plan and the text to store as `content`."""

    file: PolyaxonFile
    hptuning: HPTuningConfig
    plan: SweepPlan
    content: str


def check_group(content: str | Mapping[str, Any], *, max_experiments: int) -> CheckedGroup:
    """Validate a group polyaxonfile and plan it; refuse sweeps above `max_experiments`."""
    parsed = parse_polyaxonfile(
        parse_content(content), expected_kind="group", max_values=max_experiments
    )
    config = parsed.hptuning
    if config is None:
        raise SpecError("hptuning", "A matrix definition is required for group specification")
    plan = plan_sweep(config)
    if plan.total_experiments > max_experiments:
        raise BadRequest(
            f"content: the group would create {plan.total_experiments} experiments, more than "
            f"the {max_experiments} allowed (PLX_MAX_GROUP_EXPERIMENTS)."
        )
    text = content if isinstance(content, str) else json.dumps(content)
    return CheckedGroup(parsed, config, plan, text)


def plan_out(checked: CheckedGroup) -> dict[str, Any]:
    plan = checked.plan
    return {
        "search_algorithm": plan.algorithm,
        "space_size": plan.space_size,
        "num_experiments": plan.total_experiments,
        "iterations": list(plan.iterations),
        "concurrency": checked.hptuning.concurrency,
        "warnings": list(plan.warnings),
    }


# -------------------------------------------------------------------------------------- CRUD


async def create_group(
    session: AsyncSession,
    access: ProjectAccess,
    user: User,
    *,
    checked: CheckedGroup,
    name: str | None,
    description: str | None,
    readme: str | None,
    tags: list[str] | None,
) -> ExperimentGroup:
    config = checked.hptuning
    group = ExperimentGroup(
        user_id=user.id,
        project_id=access.project.id,
        name=name,
        description=description,
        readme=readme,
        tags=list(dict.fromkeys(tags)) if tags is not None else (checked.file.tags or None),
        content=checked.content,
        spec=checked.file.to_dict(),
        hptuning=config.to_dict(),
        group_type="study",
        search_algorithm=config.search_algorithm,
        concurrency=config.concurrency,
        # The stored seed makes a re-run after a crash suggest the same points.
        seed=config.fixed_seed if config.fixed_seed is not None else secrets.randbelow(2**31),
        num_planned=checked.plan.total_experiments,
        code_reference_id=access.project.code_reference_id,
    )
    session.add(group)
    # No check before: two creates would both pass it; the constraint decides (issue 15).
    async with unique_name(session, "group", name):
        await session.flush()
    await set_status(session, group, "created")
    return group


async def get_group(session: AsyncSession, access: ProjectAccess, group_id: int) -> ExperimentGroup:
    group = await session.scalar(
        select(ExperimentGroup).where(
            ExperimentGroup.id == group_id, ExperimentGroup.project_id == access.project.id
        )
    )
    if group is None:
        raise NotFound()
    return group


GROUP_FIELDS = FieldMap(
    fields={
        "id": (FieldKind.VALUE, ExperimentGroup.id),
        "name": (FieldKind.VALUE, ExperimentGroup.name),
        "status": (FieldKind.VALUE, ExperimentGroup.last_status),
        "search_algorithm": (FieldKind.VALUE, ExperimentGroup.search_algorithm),
        "concurrency": (FieldKind.SCALAR, ExperimentGroup.concurrency),
        "created_at": (FieldKind.DATETIME, ExperimentGroup.created_at),
        "updated_at": (FieldKind.DATETIME, ExperimentGroup.updated_at),
        "started_at": (FieldKind.DATETIME, ExperimentGroup.started_at),
        "finished_at": (FieldKind.DATETIME, ExperimentGroup.finished_at),
        "tags": (FieldKind.TAGS, ExperimentGroup.tags),
    },
    sortable={
        "created_at": ExperimentGroup.created_at,
        "updated_at": ExperimentGroup.updated_at,
        "started_at": ExperimentGroup.started_at,
        "finished_at": ExperimentGroup.finished_at,
    },
    default_sort=(ExperimentGroup.updated_at.desc(), ExperimentGroup.id.desc()),
)


async def list_groups(
    session: AsyncSession, access: ProjectAccess, params: ListParams
) -> tuple[int, list[ExperimentGroup], str | None, str | None]:
    stmt = select(ExperimentGroup).where(ExperimentGroup.project_id == access.project.id)
    dialect = session.bind.dialect.name
    stmt = apply_sort(
        apply_query(stmt, params.query, GROUP_FIELDS, dialect), params.sort, GROUP_FIELDS
    )
    return await paginate(session, stmt, params)


async def experiment_counts(session: AsyncSession, group_id: int) -> dict[str, int]:
    """The detail counters from one GROUP BY over the (group, last_status) index."""
    rows = await session.execute(
        select(Experiment.last_status, func.count())
        .where(Experiment.experiment_group_id == group_id)
        .group_by(Experiment.last_status)
    )
    by_status = {status: int(n) for status, n in rows.all()}

    def total(statuses: Sequence[str]) -> int:
        return sum(by_status.get(s, 0) for s in statuses)

    return {
        "num_experiments": sum(by_status.values()),
        "num_pending_experiments": total(PENDING),
        # v0: the running set includes scheduled, so scheduled ones count twice.
        "num_running_experiments": total(RUNNING),
        "num_scheduled_experiments": by_status.get("scheduled", 0),
        "num_succeeded_experiments": by_status.get("succeeded", 0),
        "num_failed_experiments": by_status.get("failed", 0),
        "num_stopped_experiments": by_status.get("stopped", 0),
    }


async def has_tensorboard(session: AsyncSession, group_id: int) -> bool | None:
    """v0 `group.tensorboard and group.tensorboard.is_running`: None without a tensorboard."""
    status = await session.scalar(
        select(TensorboardJob.last_status)
        .where(TensorboardJob.experiment_group_id == group_id)
        .order_by(TensorboardJob.id.desc())
        .limit(1)
    )
    if status is None:
        return None
    return status in PLUGIN_RUNNING


async def update_group(
    session: AsyncSession,
    group: ExperimentGroup,
    *,
    changes: dict[str, Any],
    merge: bool,
    max_experiments: int,
) -> ExperimentGroup:
    for required in ("concurrency", "content"):
        if required in changes and changes[required] is None:
            raise BadRequest(f"{required}: may not be null")
    if "content" in changes:
        await _replace_content(session, group, changes.pop("content"), max_experiments)
    if merge and changes.get("tags") is not None:
        changes["tags"] = list(dict.fromkeys([*(group.tags or []), *changes["tags"]]))
    if "concurrency" in changes:
        # Takes effect at the next group step: releases never exceed the new value.
        group.hptuning = {**(group.hptuning or {}), "concurrency": changes["concurrency"]}
    for key, value in changes.items():
        setattr(group, key, value)
    group.updated_at = utcnow()
    async with unique_name(session, "group", changes.get("name")):
        await session.flush()
    return group


async def _replace_content(
    session: AsyncSession, group: ExperimentGroup, content: Any, max_experiments: int
) -> None:
    has_experiments = await session.scalar(
        select(Experiment.id).where(Experiment.experiment_group_id == group.id).limit(1)
    )
    if group.last_status != "created" or has_experiments is not None:
        raise BadRequest("content: the polyaxonfile of a group cannot change once it has started.")
    checked = check_group(content, max_experiments=max_experiments)
    config = checked.hptuning
    group.content = checked.content
    group.spec = checked.file.to_dict()
    group.hptuning = config.to_dict()
    group.search_algorithm = config.search_algorithm
    group.concurrency = config.concurrency
    if config.fixed_seed is not None:
        group.seed = config.fixed_seed
    group.num_planned = checked.plan.total_experiments


async def stop_group(
    session: AsyncSession, group: ExperimentGroup, *, pending_only: bool, message: str
) -> bool:
    """v0 stop: pending experiments become `stopped` at once; unless `pending_only`, running
    ones are asked to stop (the run step kills them). A done group is left as it is."""
    # Lock the group first: the group step holds this lock while it inserts a batch, so no
    # experiment it is creating can escape the stop below.
    group = await lock_row(session, group)
    if group is None or group.last_status not in GROUP_ACTIVE:
        return False
    group.stop_requested = True
    await stop_pending_experiments(session, group.id, message=message)
    if not pending_only:
        await request_stop(session, group.id, None)
    return await set_status(session, group, "stopped", message=message)


async def stop_pending_experiments(
    session: AsyncSession, group_id: int, *, message: str
) -> list[int]:
    """Pending experiments of the group become `stopped` (v0: directly, no workload exists).

    One conditional UPDATE instead of a `set_status` per row, so that stopping a 100,000-
    experiment group answers at once. It is the same compare-and-set: only rows still pending
    (created/resuming, from which `stopped` is always allowed) change; a run the run step is
    starting right now has left `created` and is stopped through its workload instead.
    """
    now = utcnow()
    pending = (Experiment.experiment_group_id == group_id, Experiment.last_status.in_(PENDING))
    stmt = (
        update(Experiment)
        .where(locked_in_id_order(*pending), *pending)
        .values(
            last_status="stopped",
            is_managed=False,
            updated_at=now,
            finished_at=func.coalesce(Experiment.finished_at, now),
            started_at=func.coalesce(Experiment.started_at, Experiment.created_at),
        )
        .returning(Experiment.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted((await session.execute(stmt)).scalars().all())
    if ids:
        await session.execute(
            insert(ExperimentStatus),
            [
                {
                    "experiment_id": i,
                    "uuid": new_uuid(),
                    "created_at": now,
                    "status": "stopped",
                    "message": message[:256],
                }
                for i in ids
            ],
        )
    return ids


async def request_stop(session: AsyncSession, group_id: int, ids: Sequence[int] | None) -> None:
    """Flag running experiments for the run step, which stops their workloads."""
    running: list[ColumnElement[bool]] = [
        Experiment.experiment_group_id == group_id,
        Experiment.last_status.in_(RUNNING),
    ]
    if ids is not None:
        running.append(Experiment.id.in_(list(ids)))
    stmt = update(Experiment).where(locked_in_id_order(*running), *running)
    await session.execute(
        stmt.values(stop_requested=True).execution_options(synchronize_session=False)
    )


def locked_in_id_order(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """`Experiment.id IN (...)` of the rows matching `conditions`, locked by ascending id.

    A bulk UPDATE locks rows in whatever order its scan meets them, so two of them (or one and a
    writer locking experiments one at a time by id) could each hold a row the other waits for.
    The ordered FOR NO KEY UPDATE subquery takes the locks in the global order first; a row that
    changed meanwhile is re-checked against `conditions` and left out.
    """
    return Experiment.id.in_(
        select(Experiment.id)
        .where(*conditions)
        .order_by(Experiment.id)
        .with_for_update(key_share=True)
    )


async def delete_group(session: AsyncSession, group: ExperimentGroup) -> None:
    """Rows cascade; the run step sees workloads without rows and stops them."""
    # The group before its experiments, as everywhere (see the module docstring).
    if await lock_row(session, group) is None:
        return
    await session.execute(
        delete(Bookmark).where(
            Bookmark.content_type == "experiment_group", Bookmark.object_id == group.id
        )
    )
    await request_stop(session, group.id, None)
    members = select(Experiment.id).where(Experiment.experiment_group_id == group.id)
    await delete_run_tokens(session, "experiment", members)
    await session.delete(group)
    await session.flush()


async def list_statuses(
    session: AsyncSession, group: ExperimentGroup, params: ListParams
) -> tuple[int, list[ExperimentGroupStatus], str | None, str | None]:
    stmt = (
        select(ExperimentGroupStatus)
        .where(ExperimentGroupStatus.experiment_group_id == group.id)
        .order_by(ExperimentGroupStatus.created_at, ExperimentGroupStatus.id)
    )
    return await paginate(session, stmt, params)


async def list_decisions(
    session: AsyncSession, group: ExperimentGroup, params: ListParams
) -> tuple[int, list[GroupDecision], str | None, str | None]:
    stmt = (
        select(GroupDecision)
        .where(GroupDecision.experiment_group_id == group.id)
        .order_by(GroupDecision.created_at, GroupDecision.id)
    )
    return await paginate(session, stmt, params)


async def list_metrics(
    session: AsyncSession, group: ExperimentGroup, params: ListParams
) -> tuple[int, list[ExperimentMetric], str | None, str | None]:
    stmt = (
        select(ExperimentMetric)
        .join(Experiment, Experiment.id == ExperimentMetric.experiment_id)
        .where(Experiment.experiment_group_id == group.id)
        .order_by(ExperimentMetric.created_at, ExperimentMetric.id)
    )
    return await paginate(session, stmt, params)


# ---------------------------------------------------------------------------- materialisation


@dataclass(frozen=True)
class Existing:
    """The group's experiments as the search algorithm sees them, plus ids for clones."""

    trials: list[Trial]
    ids_by_index: dict[int, int]


async def read_trials(
    session: AsyncSession, group: ExperimentGroup, config: HPTuningConfig
) -> Existing:
    needs_params = config.search_algorithm in ("hyperband", "bo")
    columns = [
        Experiment.id,
        Experiment.suggestion_index,
        Experiment.last_status,
        Experiment.iteration,
        Experiment.original_id,
    ]
    if needs_params:
        columns += [Experiment.declarations, Experiment.last_metric]
    rows = (
        await session.execute(
            select(*columns).where(
                Experiment.experiment_group_id == group.id,
                Experiment.suggestion_index.is_not(None),
            )
        )
    ).all()
    index_of_id = {row.id: row.suggestion_index for row in rows}
    objective = config.objective
    trials = []
    for row in rows:
        metric = None
        params: Mapping[str, Any] = {}
        if needs_params:
            params = row.declarations or {}
            value = (row.last_metric or {}).get(objective.name) if objective else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                metric = float(value)
        trials.append(
            Trial(
                index=row.suggestion_index,
                params=params,
                status=row.last_status or "created",
                metric=metric,
                iteration=row.iteration or 0,
                original_index=index_of_id.get(row.original_id),
            )
        )
    return Existing(trials, {row.suggestion_index: row.id for row in rows})


def _insert(session: AsyncSession, model: type) -> Any:
    if session.bind.dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


async def group_build_id(session: AsyncSession, group: ExperimentGroup) -> int | None:
    """The build shared by all of the group's experiments (v0), when the file has one."""
    spec = group.spec or {}
    if not spec.get("build") or not spec.get("run"):
        return None
    from app.services.jobs import ensure_build

    project = await session.get(Project, group.project_id)
    user = await session.get(User, group.user_id)
    owner = await session.get(User, project.user_id)
    access = ProjectAccess(project=project, owner=owner, can_write=True)
    build = await ensure_build(session, access, user, spec["build"])
    return build.id


async def insert_suggestions(
    session: AsyncSession,
    group: ExperimentGroup,
    group_file: PolyaxonFile,
    suggestions: Sequence[Suggestion],
    existing: Existing,
    *,
    resume: bool,
) -> list[int]:
    """Insert the experiments of `suggestions` (and their replicas); an index that exists
    already is skipped, so a repeated or racing batch inserts nothing twice."""
    if not suggestions:
        return []
    now = utcnow()
    build_id = await group_build_id(session, group)
    rows = []
    replicas: dict[int, list[Any]] = {}
    for suggestion in suggestions:
        rendered, declarations = experiment_spec_for(group_file, suggestion.params)
        spec = rendered.spec
        managed = spec.run is not None
        if managed:
            replicas[suggestion.index] = spec.replicas()
        resources = spec.environment.resources if spec.environment else None
        original = (
            existing.ids_by_index.get(suggestion.original_index)
            if suggestion.original_index is not None
            else None
        )
        rows.append(
            {
                "uuid": new_uuid(),
                "created_at": now,
                "updated_at": now,
                "user_id": group.user_id,
                "project_id": group.project_id,
                "experiment_group_id": group.id,
                "suggestion_index": suggestion.index,
                "iteration": suggestion.iteration,
                "config": rendered.to_dict(),
                "declarations": declarations or None,
                "resources": resources.flat() if resources else None,
                "tags": rendered.tags or None,
                "original_id": original,
                "cloning_strategy": (
                    None if original is None else ("resume" if resume else "restart")
                ),
                "build_job_id": build_id if managed else None,
                "code_reference_id": group.code_reference_id,
                # Held: the group step releases it when a concurrency slot is free.
                "is_managed": False,
                "stop_requested": False,
                "last_status": "created",
            }
        )
    # executemany + RETURNING: SQLAlchemy batches it under each driver's parameter limit.
    stmt = (
        _insert(session, Experiment)
        .on_conflict_do_nothing(index_elements=["experiment_group_id", "suggestion_index"])
        .returning(Experiment.id, Experiment.suggestion_index)
    )
    inserted = list((await session.execute(stmt, rows)).all())
    if not inserted:
        return []
    # The initial status of a new row: None -> created, the only transition there is.
    await session.execute(
        insert(ExperimentStatus),
        [
            {"experiment_id": i, "uuid": new_uuid(), "created_at": now, "status": "created"}
            for i, _ in inserted
        ],
    )
    jobs = [
        {
            "experiment_id": experiment_id,
            "uuid": new_uuid(),
            "created_at": now,
            "updated_at": now,
            "role": replica.role,
            "replica_index": replica.index,
            "resources": (
                replica.environment.resources.flat() if replica.environment.resources else None
            ),
            "last_status": "created",
        }
        for experiment_id, index in inserted
        for replica in replicas.get(index, ())
    ]
    if jobs:
        job_ids = (
            (await session.execute(insert(ExperimentJob).returning(ExperimentJob.id), jobs))
            .scalars()
            .all()
        )
        await session.execute(
            insert(ExperimentJobStatus),
            [
                {"job_id": j, "uuid": new_uuid(), "created_at": now, "status": "created"}
                for j in job_ids
            ],
        )
    return [experiment_id for experiment_id, _ in inserted]


async def materialise(
    session: AsyncSession,
    group: ExperimentGroup,
    config: HPTuningConfig,
    group_file: PolyaxonFile,
    *,
    limit: int = BATCH_SIZE,
) -> SuggestResult:
    """One batch: ask the algorithm what should exist next and insert what is missing."""
    existing = await read_trials(session, group, config)
    assert group.seed is not None
    result = suggest(config, seed=group.seed, history=existing.trials, limit=limit)
    resume = bool(config.hyperband and config.hyperband.resume)
    inserted = await insert_suggestions(
        session, group, group_file, result.suggestions, existing, resume=resume
    )
    group.materialized_count = len(existing.trials) + len(inserted)
    iterations = {t.iteration for t in existing.trials} | {s.iteration for s in result.suggestions}
    if config.search_algorithm in ("hyperband", "bo"):
        group.current_iteration = max(current_iteration(config, existing.trials), len(iterations))
    if result.finished:
        group.suggestions_done = True
    return result


@dataclass
class IndexedCursor:
    """Where a grid / random materialisation is in the algorithm's list, kept across batches.

    Re-reading every existing row per batch would make a 100,000-experiment group quadratic; a
    random stream over a continuous space would also be replayed from its start each time.
    """

    iterator: Iterator[Suggestion] | None = None


async def materialise_indexed(
    session: AsyncSession,
    group: ExperimentGroup,
    config: HPTuningConfig,
    group_file: PolyaxonFile,
    cursor: IndexedCursor,
    *,
    limit: int = BATCH_SIZE,
) -> int:
    """One batch of a grid / random group (whose list is known up front); returns rows added."""
    assert group.seed is not None
    if cursor.iterator is None:
        indexes = set(
            (
                await session.scalars(
                    select(Experiment.suggestion_index).where(
                        Experiment.experiment_group_id == group.id,
                        Experiment.suggestion_index.is_not(None),
                    )
                )
            ).all()
        )
        top = max(indexes, default=-1) + 1
        if len(indexes) != top:  # a gap (rows deleted by hand): fill it the slow, exact way
            result = await materialise(session, group, config, group_file, limit=limit)
            return len(result.suggestions)
        group.materialized_count = top
        cursor.iterator = make_search(config, group.seed).iter_suggestions(top, None)
    batch = list(islice(cursor.iterator, limit))
    inserted = await insert_suggestions(
        session, group, group_file, batch, Existing([], {}), resume=False
    )
    group.materialized_count += len(inserted)
    if len(batch) < limit:
        group.suggestions_done = True
    return len(batch)


def starts_experiments(group: ExperimentGroup) -> bool:
    """Whether the group's file has `run`: its experiments are created held and released within
    the concurrency. Without it they are tracking-only, reported by their clients."""
    return bool((group.spec or {}).get("run"))


def held_clones_of(group_id: Any) -> ColumnElement[bool]:
    """Whether the group has a held experiment outside its plan (a restart, resume or copy)
    waiting for a slot. Tracking-only experiments have no jobs, so they never match."""
    return exists().where(
        Experiment.experiment_group_id == group_id,
        Experiment.last_status.in_(PENDING),
        Experiment.suggestion_index.is_(None),
        Experiment.is_managed.is_(False),
        Experiment.stop_requested.is_(False),
        exists().where(ExperimentJob.experiment_id == Experiment.id),
    )


async def release_experiments(session: AsyncSession, group: ExperimentGroup) -> list[int]:
    """Let at most `concurrency` experiments of the group be started or running at once.

    Held experiments go in id order: the plan's in suggestion order (materialised in that order),
    a clone after the experiments that existed when it was made."""
    if not starts_experiments(group):
        return []  # tracking-only experiments: nothing to start
    occupied = await session.scalar(
        select(func.count()).where(
            Experiment.experiment_group_id == group.id,
            Experiment.last_status.not_in(DONE),
            (Experiment.is_managed.is_(True)) | Experiment.last_status.in_(RUNNING),
        )
    )
    free = (group.concurrency or 1) - int(occupied or 0)
    if free <= 0:
        return []
    ids = list(
        (
            await session.scalars(
                select(Experiment.id)
                .where(
                    Experiment.experiment_group_id == group.id,
                    Experiment.is_managed.is_(False),
                    Experiment.last_status.in_(PENDING),
                    Experiment.stop_requested.is_(False),
                )
                .order_by(Experiment.id)
                .limit(free)
                .with_for_update(key_share=True)
            )
        ).all()
    )
    if ids:
        await session.execute(
            update(Experiment)
            .where(Experiment.id.in_(ids))
            .values(is_managed=True)
            .execution_options(synchronize_session=False)
        )
    return ids


async def count_unfinished(session: AsyncSession, group_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(
                Experiment.experiment_group_id == group_id, Experiment.last_status.not_in(DONE)
            )
        )
        or 0
    )


async def record_decision(
    session: AsyncSession,
    group: ExperimentGroup,
    *,
    kind: str,
    reason: str,
    experiment_ids: Sequence[int] | None,
    inputs: dict[str, Any] | None,
) -> GroupDecision:
    decision = GroupDecision(
        experiment_group_id=group.id,
        kind=kind,
        reason=reason,
        experiment_ids=list(experiment_ids) if experiment_ids is not None else None,
        inputs=inputs,
    )
    session.add(decision)
    await session.flush()
    return decision
