"""Reconcile experiments, jobs and builds with the runtime's workloads (level-triggered).

One pass: read the runtime's workloads and the active rows (app/reconciler/planning.py), then
- a workload whose row is gone (or done) is stopped and, once ended, cleaned;
- a created row is queued (`scheduled`); queued rows start in id order up to the capacity
  (app/reconciler/starts.py, with the specs of app/reconciler/specs.py);
- a row asked to stop has its workloads stopped;
- an observed workload state becomes a status through `set_status` (illegal ones are no-ops,
  app/reconciler/observations.py);
- a started row whose workload vanished is failed with a message.
Every action is keyed by a deterministic workload key, so a repeated pass is harmless.

One run's trouble stays its own (app/reconciler/retries.py): a workload the runtime cannot
observe, start or stop is skipped for a growing delay while the pass goes on with the others,
named in its run's status message after a few failures, and failed after
`PLX_WORKLOAD_RETRY_TIMEOUT` seconds. A workload whose run is over that cannot be retired is
retried with backoff (and logged) the same way, without holding up the pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from app.faults import crash_point
from app.kinds import Kind
from app.logic.statuses import Status, is_done
from app.models import Experiment, ExperimentJob
from app.models.base import utcnow
from app.reconciler.locking import RunRef, lock_run, locked_replicas
from app.reconciler.observations import RECORD, Observation, observe_chunk
from app.reconciler.planning import (
    WAITING,
    RowFacts,
    created_ids,
    load_rows,
    replica_facts,
    would_change,
)
from app.reconciler.run_actions import (
    Action,
    chunks,
    run_all,
    run_key,
    tell_failure,
    tracked_action,
)
from app.reconciler.starts import mark_queued, start_chunk
from app.runtimes.base import Runtime, WorkloadState
from app.services.runs import append_log, parse_key, workload_key
from app.services.statuses import set_status

log = logging.getLogger(__name__)

VANISHED = "The run's workload vanished (deleted from outside, or its machine restarted)."
NO_BUILD = "The local runtime does not build images; the build is recorded as succeeded."
ZOMBIE = "Experiment is in zombie state (no heartbeat was reported)."
SWEEP_BATCH = 400
# Row actions (start, observe, stop) of one pass in flight at once, each with its own session.
PASS_CONCURRENCY = 8


@dataclass
class PassView:
    """What one pass read: the runtime's workloads of runs, and the rows it may act on."""

    workloads: dict[str, WorkloadState]
    capacity: int | None
    running: int  # workloads not done
    rows: dict[RunRef, RowFacts]
    more_waiting: bool  # a full batch of startable rows was read
    created: list[RunRef]
    more_created: bool
    replicas: dict[int, list[RowFacts]]  # of experiments with workloads

    def has_room(self, starting: int) -> bool:
        return self.capacity is None or self.running + starting < self.capacity


@dataclass
class PassPlan:
    """The actions of one pass on live runs."""

    actions: list[Action] = field(default_factory=list)
    observes: list[Observation] = field(default_factory=list)
    starts: list[RunRef] = field(default_factory=list)


async def _read_pass(rec: Any) -> PassView:
    runtime = rec.runtime
    workloads = {
        key: state
        for key, state in (await runtime.list_workloads()).items()
        if parse_key(key) is not None
    }
    running = sum(1 for s in workloads.values() if not s.done)
    capacity = runtime.capacity
    free = None if capacity is None else capacity - running
    async with rec.session() as session:
        rows, more = await load_rows(session, workloads, free)
        created, more_created = await created_ids(session)
        keys = [parse_key(key) for key in workloads]
        observed = {key[1] for key in keys if key and key[0] == Kind.EXPERIMENT}
        exp_ids = sorted(i for k, i in rows if k == Kind.EXPERIMENT and i in observed)
        replicas = await replica_facts(session, exp_ids)
    return PassView(workloads, capacity, running, rows, more, created, more_created, replicas)


def _workloads_by_run(
    rec: Any, view: PassView
) -> tuple[dict[RunRef, dict[str, WorkloadState]], list[Action]]:
    """The workloads of live runs, by run; and the retires of those whose run is over or gone."""
    by_run: dict[RunRef, dict[str, WorkloadState]] = {}
    retires: list[Action] = []
    grace = rec.settings.stop_grace_seconds
    for key, state in view.workloads.items():
        kind, run_id, uuid8, _, _ = parse_key(key)  # type: ignore[misc]
        row = view.rows.get((kind, run_id))
        if row is None or row.uuid[:8] != uuid8 or is_done(row.last_status):
            if rec.retries.due(key):
                retire = _retire(rec.runtime, key, state, grace)
                retires.append((f"retire {key}", tracked_action(rec, key, "stop", retire)))
            continue
        by_run.setdefault((kind, run_id), {})[key] = state
    return by_run, retires


def _plan_run(
    rec: Any,
    plan: PassPlan,
    view: PassView,
    ref: RunRef,
    row: RowFacts,
    states: dict[str, WorkloadState],
) -> None:
    """What this pass does for one live run."""
    kind, run_id = ref
    key = run_key(kind, run_id)
    broken = {k: state.error for k, state in states.items() if state.error}
    if row.stop_requested:
        # A stop goes ahead even when the workload cannot be observed: it may still end it.
        stop = _stop(rec, kind, row, states)
        plan.actions.append((f"stop {key}", tracked_action(rec, key, "stop", stop, run=ref)))
    elif broken:
        workload, error = next(iter(broken.items()))
        failure = rec.retries.failed(key, "observe", error, subject=workload)
        plan.actions.append((f"trouble {key}", tell_failure(rec, kind, run_id, failure)))
    elif kind == Kind.BUILD and not rec.runtime.capabilities.builds_images:
        build = _record_build(rec, row)
        plan.actions.append((f"build {run_id}", tracked_action(rec, key, RECORD, build, run=ref)))
    elif states:
        rec.retries.succeeded(key, "observe", "start")  # its workloads are observed now
        if would_change(kind, row, states, view.replicas.get(run_id, [])):
            plan.observes.append((kind, run_id, states))
    elif row.last_status in WAITING:
        if view.has_room(len(plan.starts)):
            plan.starts.append(ref)
    else:
        vanished = _vanished(rec, kind, row)
        plan.actions.append(
            (f"vanished {key}", tracked_action(rec, key, "observe", vanished, run=ref))
        )


def _plan_pass(
    rec: Any, view: PassView, by_run: dict[RunRef, dict[str, WorkloadState]]
) -> PassPlan:
    plan = PassPlan()
    for ref, row in sorted(view.rows.items(), key=lambda item: item[0][1]):
        if is_done(row.last_status):
            continue
        if not rec.retries.due(run_key(*ref)):
            continue  # failed lately: its turn comes after its delay, the others go on
        _plan_run(rec, plan, view, ref, row, by_run.get(ref, {}))
    return plan


async def reconcile_runs(rec: Any) -> None:
    view = await _read_pass(rec)
    by_run, retires = _workloads_by_run(rec, view)
    # Retires first: they free the slots that this pass's starts may take.
    width = 1 if rec.settings.database_url.startswith("sqlite") else PASS_CONCURRENCY
    await run_all(retires, width)

    crash_point("runs.after_listing")
    plan = _plan_pass(rec, view, by_run)
    actions = plan.actions + [
        (f"observe {len(chunk)} runs", observe_chunk(rec, chunk))
        for chunk in chunks(plan.observes, width)
    ]
    start_chunks: list[Action] = [
        (f"start {len(chunk)} runs", start_chunk(rec, chunk))
        for chunk in chunks(plan.starts, width)
    ]
    outcomes = await run_all([*actions, *start_chunks], width)
    started = sum(n for n in outcomes[len(actions) :] if isinstance(n, int))
    view.running += started
    # What could not start now waits as `scheduled`: no capacity, a build in progress, a batch
    # beyond this pass's.
    attempted = set(plan.starts)
    still_created = [c for c in view.created if c not in attempted]
    if still_created:
        await mark_queued(rec, still_created)
    if view.more_created or (view.more_waiting and started and view.has_room(0)):
        rec.wake()  # a full batch was read and progress made: the rest is the next pass's


async def _retire(runtime: Runtime, key: str, state: WorkloadState, grace: float) -> None:
    """Stop (if alive) and clean up a workload whose run is done or gone."""
    crash_point("runs.retire_before_stop")
    if not state.done:
        await runtime.stop(key, grace_seconds=grace)
        state = await runtime.observe(key) or state
    crash_point("runs.retire_before_cleanup")
    if state.done:
        await runtime.cleanup(key)


async def _record_build(rec: Any, row: RowFacts) -> None:
    """A runtime that builds no image records the build as succeeded, saying so in its log."""
    async with rec.session() as session:
        fresh = await lock_run(session, Kind.BUILD, row.id)
        if fresh is not None and await set_status(
            session, fresh, Status.SUCCEEDED, message=NO_BUILD
        ):
            # `logs --past` of a build shows why nothing was built (v0 answered 404 on no log).
            append_log(rec.settings, Kind.BUILD, fresh.id, NO_BUILD)


async def _stop(rec: Any, kind: str, row: RowFacts, states: dict[str, WorkloadState]) -> None:
    crash_point("runs.stop_before_signal")
    for key, state in states.items():
        if not state.done:
            await rec.runtime.stop(key, grace_seconds=rec.settings.stop_grace_seconds)
            crash_point("runs.stop_after_signal")
    async with rec.session() as session:
        fresh = await lock_run(session, kind, row.id)
        if fresh is None:
            return
        if kind == Kind.EXPERIMENT:
            for job in await locked_replicas(session, fresh):
                await set_status(session, job, Status.STOPPED, message="Stopped on request.")
        message = "Experiment was stopped." if kind == Kind.EXPERIMENT else "Stopped on request."
        await set_status(session, fresh, Status.STOPPED, message=message)
    for key in states:
        # Beside the stop, which is recorded: a failure here is left to the retire of a later
        # pass (the run is done, so its workloads are retired), never undoes the stop.
        try:
            state = await rec.runtime.observe(key)
            if state is not None and state.done:
                await rec.runtime.cleanup(key)
        except Exception as exc:
            log.warning("cleanup of %s after its stop failed (retried later): %r", key, exc)


async def _vanished(rec: Any, kind: str, row: RowFacts) -> None:
    async with rec.session() as session:
        fresh = await lock_run(session, kind, row.id)
        if fresh is None or is_done(fresh.last_status) or fresh.last_status in WAITING:
            return
        jobs: list[Any] = []
        keys = [workload_key(kind, fresh)]
        if kind == Kind.EXPERIMENT:
            jobs = list(
                await session.scalars(
                    select(ExperimentJob).where(ExperimentJob.experiment_id == fresh.id)
                )
            )
            keys = [workload_key(kind, fresh, j.role, j.replica_index) for j in jobs]
        # The workloads were listed before the row was read: another replica may have started
        # the run in between. Only a workload still absent now, after the read, has vanished.
        for key in keys:
            if await rec.runtime.observe(key) is not None:
                return
        for job in jobs:
            await set_status(session, job, Status.FAILED, message=VANISHED)
        await set_status(session, fresh, Status.FAILED, message=VANISHED)


async def sweep_stale_heartbeats(rec: Any) -> None:
    """Fail running experiments without a heartbeat for `heartbeat_timeout` seconds (v0's zombie
    check; off when the timeout is 0). The last ping, else the start, is the reference."""
    timeout = rec.settings.heartbeat_timeout
    if timeout <= 0:
        return
    cutoff = utcnow() - timedelta(seconds=timeout)
    stale = or_(
        Experiment.heartbeat_at < cutoff,
        and_(Experiment.heartbeat_at.is_(None), Experiment.started_at < cutoff),
    )
    async with rec.session() as session:
        rows = await session.scalars(
            select(Experiment)
            .where(Experiment.last_status == Status.RUNNING, stale)
            .order_by(Experiment.id)
            .limit(SWEEP_BATCH)
        )
        for exp in rows:
            # set_status is compare-and-set: a run that ended meanwhile stays as it ended.
            if await set_status(session, exp, Status.FAILED, message=ZOMBIE):
                exp.stop_requested = exp.is_managed  # the run step stops what may still run
                for job in await session.scalars(
                    select(ExperimentJob).where(ExperimentJob.experiment_id == exp.id)
                ):
                    await set_status(session, job, Status.FAILED, message=ZOMBIE)
    rec.wake()


RUN_STEPS = [reconcile_runs, sweep_stale_heartbeats]
