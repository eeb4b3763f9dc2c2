"""Materialising a sweep: the experiments its search algorithm suggests, inserted in batches.

Experiments are keyed by (group, suggestion_index) under a unique constraint, so a batch that
races or repeats inserts nothing twice. Each experiment is created held (`is_managed=False`):
app.services.groups.release lets it start within the concurrency.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.dialects import upsert
from app.logic.hptuning import HPTuningConfig
from app.logic.polyaxonfile import PolyaxonFile, experiment_spec_for
from app.logic.search import (
    GridSearch,
    RandomSearch,
    Suggestion,
    SuggestResult,
    Trial,
    current_iteration,
    make_search,
    suggest,
)
from app.logic.specs import ExperimentSpec, Replica
from app.logic.statuses import Status
from app.models import Experiment, ExperimentGroup, ExperimentJob, Project, User
from app.models.base import new_uuid, utcnow
from app.services.projects import ProjectAccess
from app.services.statuses import write_history

BATCH_SIZE = 1000
# The algorithms that read the metrics and parameters of the experiments they suggested.
ADAPTIVE = ("hyperband", "bo")
# The algorithms whose whole list of suggestions is known up front.
INDEXED = ("grid", "random")


@dataclass(frozen=True)
class Existing:
    """The group's experiments as the search algorithm sees them, plus ids for clones."""

    trials: list[Trial]
    ids_by_index: dict[int, int]


def _objective_value(config: HPTuningConfig, last_metric: Mapping[str, Any] | None) -> float | None:
    objective = config.objective
    value = (last_metric or {}).get(objective.name) if objective else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


async def read_trials(
    session: AsyncSession, group: ExperimentGroup, config: HPTuningConfig
) -> Existing:
    needs_params = config.search_algorithm in ADAPTIVE
    columns: list[Any] = [
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
    trials = [
        Trial(
            index=row.suggestion_index,
            params=(row.declarations or {}) if needs_params else {},
            status=row.last_status or Status.CREATED,
            metric=_objective_value(config, row.last_metric) if needs_params else None,
            iteration=row.iteration or 0,
            original_index=index_of_id.get(row.original_id),
        )
        for row in rows
    ]
    return Existing(trials, {row.suggestion_index: row.id for row in rows})


async def group_build_id(session: AsyncSession, group: ExperimentGroup) -> int | None:
    """The build shared by all of the group's experiments (v0), when the file has one."""
    spec = group.spec or {}
    if not spec.get("build") or not spec.get("run"):
        return None
    # Imported here: app.services.jobs imports the experiment services, which import this package.
    from app.services.jobs import ensure_build

    project = await session.get_one(Project, group.project_id)
    user = await session.get_one(User, group.user_id)
    owner = await session.get_one(User, project.user_id)
    access = ProjectAccess(project=project, owner=owner, can_write=True)
    build = await ensure_build(session, access, user, spec["build"])
    return build.id


@dataclass(frozen=True)
class _Rows:
    experiments: list[dict[str, Any]]
    replicas: dict[int, list[Replica]]  # suggestion index -> the jobs of a managed one


def _experiment_rows(
    group: ExperimentGroup,
    group_file: PolyaxonFile,
    suggestions: Sequence[Suggestion],
    existing: Existing,
    *,
    resume: bool,
    build_id: int | None,
    now: datetime,
) -> _Rows:
    rows = _Rows([], {})
    for suggestion in suggestions:
        rendered, declarations = experiment_spec_for(group_file, suggestion.params)
        spec = rendered.spec
        assert isinstance(spec, ExperimentSpec)
        managed = spec.run is not None
        if managed:
            rows.replicas[suggestion.index] = spec.replicas()
        resources = spec.environment.resources if spec.environment else None
        original = (
            existing.ids_by_index.get(suggestion.original_index)
            if suggestion.original_index is not None
            else None
        )
        rows.experiments.append(
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
                "last_status": Status.CREATED,
            }
        )
    return rows


async def _insert_jobs(
    session: AsyncSession,
    inserted: Sequence[tuple[int, int]],
    replicas: dict[int, list[Replica]],
    now: datetime,
) -> None:
    """The jobs (replicas) of the experiments just inserted, with their first status."""
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
            "last_status": Status.CREATED,
        }
        for experiment_id, index in inserted
        for replica in replicas.get(index, ())
    ]
    if not jobs:
        return
    stmt = insert(ExperimentJob).returning(ExperimentJob.id)
    job_ids = list((await session.execute(stmt, jobs)).scalars().all())
    await write_history(session, ExperimentJob, job_ids, Status.CREATED, at=now)


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
    rows = _experiment_rows(
        group, group_file, suggestions, existing, resume=resume, build_id=build_id, now=now
    )
    # executemany + RETURNING: SQLAlchemy batches it under each driver's parameter limit.
    stmt = (
        upsert(session, Experiment)
        .on_conflict_do_nothing(index_elements=["experiment_group_id", "suggestion_index"])
        .returning(Experiment.id, Experiment.suggestion_index)
    )
    inserted = [
        (row.id, row.suggestion_index) for row in await session.execute(stmt, rows.experiments)
    ]
    if not inserted:
        return []
    experiment_ids = [experiment_id for experiment_id, _ in inserted]
    # The initial status of a new row: None -> created, the only transition there is.
    await write_history(session, Experiment, experiment_ids, Status.CREATED, at=now)
    await _insert_jobs(session, inserted, rows.replicas, now)
    return experiment_ids


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
    if config.search_algorithm in ADAPTIVE:
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


async def _suggestion_indexes(session: AsyncSession, group: ExperimentGroup) -> set[int]:
    stmt = select(Experiment.suggestion_index).where(
        Experiment.experiment_group_id == group.id, Experiment.suggestion_index.is_not(None)
    )
    return {index for index in (await session.scalars(stmt)).all() if index is not None}


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
        indexes = await _suggestion_indexes(session, group)
        top = max(indexes, default=-1) + 1
        if len(indexes) != top:  # a gap (rows deleted by hand): fill it the slow, exact way
            result = await materialise(session, group, config, group_file, limit=limit)
            return len(result.suggestions)
        group.materialized_count = top
        search = make_search(config, group.seed)
        assert isinstance(search, GridSearch | RandomSearch)
        cursor.iterator = search.iter_suggestions(top, None)
    batch = list(islice(cursor.iterator, limit))
    inserted = await insert_suggestions(
        session, group, group_file, batch, Existing([], {}), resume=False
    )
    group.materialized_count += len(inserted)
    if len(batch) < limit:
        group.suggestions_done = True
    return len(batch)
