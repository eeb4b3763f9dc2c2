"""The group step: drive each active sweep one level-triggered pass at a time.

Per group, in its own transactions: created -> running; early stopping (thresholds stop pending
experiments and the group, policies stop running experiments); materialise missing suggestions in
batches (each batch committed, so a crash resumes without duplicates or gaps); release experiments
to the run step within the concurrency; succeeded once nothing more will be suggested and every
experiment is done; failed, with the reason, when the sweep cannot proceed. A group that is over
is only visited while it has held clones (restarts, resumes, copies) to release within its
concurrency.

A group whose pass fails is that group's trouble alone (app/reconciler/retries.py): retried with
backoff while the other groups go on, told in its status message, and failed with the reason once
it has failed for PLX_WORKLOAD_RETRY_TIMEOUT seconds.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.dialects import is_postgres
from app.faults import crash_point
from app.logic.early_stopping import MetricHistory, check_thresholds, evaluate_policy
from app.logic.errors import SpecError
from app.logic.hptuning import HPTuningConfig, parse_hptuning
from app.logic.polyaxonfile import PolyaxonFile, parse_polyaxonfile
from app.logic.statuses import Status
from app.models import Experiment, ExperimentGroup, ExperimentMetric
from app.reconciler.retries import Failure, report
from app.services import groups as service
from app.services.statuses import set_status

log = logging.getLogger(__name__)

MAX_GROUPS_PER_PASS = 200
# Batches per group per pass: a 10,000-experiment group materialises in one pass, a bigger one
# goes on in the next pass (woken at once) so that other groups and runs are not held up.
MAX_BATCHES_PER_PASS = 12
EARLY_STOPPING_MESSAGE = "Early stopping"


async def reconcile_groups(reconciler: Any) -> None:
    """Reconciler step: one pass over the active groups, then the finished ones with held
    clones, oldest first."""
    async with reconciler.session() as session:
        ids = await _group_ids(session, ExperimentGroup.last_status.in_(service.GROUP_ACTIVE))
        if len(ids) < MAX_GROUPS_PER_PASS:
            # Two queries, not one OR: Postgres would answer the OR by hashing every pending
            # experiment (a 100,000-experiment sweep: ~45 ms a pass); this way it probes the
            # (group, status) index once per finished group (~3 us each: 6 ms at 2,000 groups).
            ids += await _group_ids(
                session,
                ExperimentGroup.last_status.not_in(service.GROUP_ACTIVE),
                service.held_clones_of(ExperimentGroup.id),
                limit=MAX_GROUPS_PER_PASS - len(ids),
            )
    woke = False
    retries = reconciler.retries
    for group_id in ids:
        key = f"group-{group_id}"
        if not retries.due(key):
            continue
        try:
            woke |= await reconcile_group(reconciler, group_id)
            crash_point("groups.after_group_committed")
        except Exception as exc:
            await _report(reconciler, group_id, retries.failed(key, "reconcile", exc))
        else:
            retries.succeeded(key)
    if woke:
        reconciler.wake()


async def _report(reconciler: Any, group_id: int, failure: Failure) -> None:
    async def load(session: AsyncSession) -> ExperimentGroup | None:
        return await _lock_group(session, group_id)

    async def give_up(session: AsyncSession, group: ExperimentGroup, message: str) -> None:
        await _fail(session, group, message)

    await report(reconciler, failure, load, give_up)


async def _group_ids(
    session: AsyncSession, *conditions: ColumnElement[bool], limit: int = MAX_GROUPS_PER_PASS
) -> list[int]:
    stmt = select(ExperimentGroup.id).where(*conditions).order_by(ExperimentGroup.id).limit(limit)
    return list((await session.scalars(stmt)).all())


async def _lock_group(session: AsyncSession, group_id: int) -> ExperimentGroup | None:
    """The group row, locked: two replicas (or a replica and a stop request) never drive the
    same group at once. None when it is gone.

    Postgres: FOR NO KEY UPDATE SKIP LOCKED (another replica has it: skip; NO KEY so that the
    foreign-key checks of writers touching its experiments never wait for it). SQLite:
    transactions begin IMMEDIATE, so the writer already holds the only write lock.
    """
    stmt = select(ExperimentGroup).where(ExperimentGroup.id == group_id)
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True, key_share=True)
    return await session.scalar(stmt.execution_options(populate_existing=True))


def _load(group: ExperimentGroup) -> tuple[PolyaxonFile, HPTuningConfig]:
    # Checked against PLX_MAX_GROUP_EXPERIMENTS when stored; values are built lazily.
    group_file = parse_polyaxonfile(group.spec or {}, expected_kind="group", max_values=None)
    config = parse_hptuning(group.hptuning or {})
    if group.concurrency:
        config = config.model_copy(update={"concurrency": group.concurrency})
    return group_file, config


async def _fail(session: AsyncSession, group: ExperimentGroup, reason: str) -> None:
    await service.record_decision(
        session, group, kind=Status.FAILED, reason=reason, experiment_ids=None, inputs=None
    )
    await service.stop_pending_experiments(session, group.id, message=reason)
    await set_status(session, group, Status.FAILED, message=reason)


async def reconcile_group(reconciler: Any, group_id: int) -> bool:
    """Converge one group. True when another pass is wanted soon (experiments were released to
    the run step, or materialisation goes on)."""
    cursor = service.IndexedCursor()
    for _ in range(MAX_BATCHES_PER_PASS):
        async with reconciler.session() as session:
            group = await _lock_group(session, group_id)
            if group is None:
                return False
            if group.last_status not in service.GROUP_ACTIVE:
                # Over: only clones made since (restart/resume/copy) wait for a slot.
                return bool(await service.release_experiments(session, group))
            try:
                group_file, config = _load(group)
            except SpecError as exc:
                await _fail(session, group, f"Experiment group could not be loaded: {exc}")
                return False
            if group.last_status == Status.CREATED:
                await set_status(session, group, Status.RUNNING)
                crash_point("groups.after_running_status")
            if await _early_stopping(session, group, config):
                return False
            if not group.suggestions_done:
                try:
                    more = await _materialise(session, group, config, group_file, cursor)
                except SpecError as exc:
                    reason = f"Experiment group could not create new suggestions: {exc}"
                    await _fail(session, group, reason)
                    return False
                crash_point("groups.after_materialise_batch")
                if more:
                    continue  # commit this batch, then the next one
            crash_point("groups.before_release")
            released = await service.release_experiments(session, group)
            crash_point("groups.after_release")
            if group.suggestions_done and not released:
                if await service.count_unfinished(session, group.id) == 0:
                    await set_status(session, group, Status.SUCCEEDED)
                    crash_point("groups.after_succeeded")
            return bool(released)
    return True


async def _materialise(
    session: AsyncSession,
    group: ExperimentGroup,
    config: HPTuningConfig,
    group_file: PolyaxonFile,
    cursor: service.IndexedCursor,
) -> bool:
    """One batch; True when another batch should follow in this pass."""
    if config.search_algorithm in service.INDEXED:
        await service.materialise_indexed(session, group, config, group_file, cursor)
        return not group.suggestions_done
    result = await service.materialise(session, group, config, group_file)
    return bool(result.suggestions) and not result.finished


async def _early_stopping(
    session: AsyncSession, group: ExperimentGroup, config: HPTuningConfig
) -> bool:
    """Apply thresholds (True: the group stopped) and the running-experiment policy.

    v0 checked thresholds only before starting pending experiments: once every experiment has
    started (and no more will be suggested), a crossing no longer stops the group.
    """
    if config.early_stopping and await _has_pending_work(session, group):
        rows = (
            await session.execute(
                select(Experiment.id, Experiment.last_metric).where(
                    Experiment.experiment_group_id == group.id,
                    Experiment.last_metric.is_not(None),
                )
            )
        ).all()
        decision = check_thresholds(
            config.early_stopping, {row.id: row.last_metric or {} for row in rows}
        )
        if decision is not None:
            stopped = await service.stop_pending_experiments(
                session, group.id, message=EARLY_STOPPING_MESSAGE
            )
            await service.record_decision(
                session,
                group,
                kind="early_stopping",
                reason=decision.reason,
                experiment_ids=stopped,
                inputs=decision.to_dict(),
            )
            group.stop_requested = True
            await set_status(session, group, Status.STOPPED, message=decision.reason)
            return True
    if config.early_stopping_policy is not None:
        await _apply_policy(session, group, config)
    return False


async def _has_pending_work(session: AsyncSession, group: ExperimentGroup) -> bool:
    if not group.suggestions_done:
        return True
    pending = await session.scalar(
        select(Experiment.id)
        .where(
            Experiment.experiment_group_id == group.id,
            Experiment.last_status.in_(service.PENDING),
        )
        .limit(1)
    )
    return pending is not None


async def _apply_policy(
    session: AsyncSession, group: ExperimentGroup, config: HPTuningConfig
) -> None:
    policy = config.early_stopping_policy
    assert policy is not None
    experiments = (
        await session.execute(
            select(Experiment.id, Experiment.last_status, Experiment.stop_requested).where(
                Experiment.experiment_group_id == group.id
            )
        )
    ).all()
    running = {e.id for e in experiments if e.last_status in service.RUNNING}
    if not running:
        return
    flagged = {e.id for e in experiments if e.stop_requested}
    metrics = (
        await session.execute(
            select(ExperimentMetric.experiment_id, ExperimentMetric.values)
            .join(Experiment, Experiment.id == ExperimentMetric.experiment_id)
            .where(Experiment.experiment_group_id == group.id)
            .order_by(ExperimentMetric.created_at, ExperimentMetric.id)
        )
    ).all()
    points: dict[int, list[tuple[int, float]]] = {}
    for experiment_id, values in metrics:
        value = (values or {}).get(policy.metric)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        series = points.setdefault(experiment_id, [])
        step = (values or {}).get("step")
        series.append((int(step) if isinstance(step, int) else len(series), float(value)))
    histories = [
        MetricHistory(experiment_id, tuple(series), experiment_id in running)
        for experiment_id, series in points.items()
    ]
    for decision in evaluate_policy(policy, histories):
        if decision.experiment in flagged:
            continue
        await service.request_stop(session, group.id, [decision.experiment])
        await service.record_decision(
            session,
            group,
            kind=f"early_stopping_{decision.rule}",
            reason=decision.reason,
            experiment_ids=[decision.experiment],
            inputs=decision.to_dict(),
        )
