"""Writing what workloads show onto their runs: statuses through `set_status` (illegal ones are
no-ops), an experiment's derived from its replicas'."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.faults import crash_point
from app.kinds import Kind
from app.logic.statuses import Status, experiment_status_from_jobs, is_done
from app.models import Experiment, ExperimentJob
from app.reconciler.locking import lock_runs, replicas_of
from app.reconciler.run_actions import each_alone
from app.runtimes.base import WorkloadState
from app.services.runs import workload_key
from app.services.statuses import set_status

RECORD = "record the state of"  # what failed when writing what a workload shows failed
REPLICA_ENDED = "The experiment ended; this replica was stopped."
# A workload that ended is recorded as having run first when its row had not seen it run.
NOT_YET_RUNNING = frozenset({Status.CREATED, Status.SCHEDULED, Status.STARTING, Status.BUILDING})

Observation = tuple[str, int, dict[str, WorkloadState]]  # (kind, run id, its workloads' states)


async def observe_chunk(rec: Any, items: list[Observation]) -> None:
    async def step(part: list[Observation]) -> list[Any]:
        return await _observe_batch(rec, part)

    await each_alone(rec, step, items, RECORD, clears=True)


async def _observe_batch(rec: Any, items: list[Observation]) -> list[Any]:
    """Write what the workloads of these runs show, one transaction for all of them: rows and
    replicas locked in two statements, statuses sent in one flush at commit."""
    async with rec.session() as session:
        rows = await lock_runs(session, [(kind, run_id) for kind, run_id, _ in items])
        exp_ids = [
            run_id
            for kind, run_id, _ in items
            if (kind, run_id) in rows and kind == Kind.EXPERIMENT
        ]
        replicas = await replicas_of(session, exp_ids)
        for kind, run_id, states in items:
            fresh = rows.get((kind, run_id))
            if fresh is None:
                continue
            crash_point("runs.observe_before_status")
            if kind == Kind.EXPERIMENT:
                await _observe_experiment(session, fresh, replicas.get(fresh.id, []), states)
            else:
                await _observe_workload(session, fresh, next(iter(states.values())))
    return []


async def _observe_workload(session: AsyncSession, row: Any, state: WorkloadState) -> bool:
    """The row's status from its workload's state. True when the workload ran (see below)."""
    ran = await _record_run(session, row, state)
    await set_status(
        session, row, state.status, message=state.message, details=_details(state), flush=False
    )
    return ran


async def _observe_experiment(
    session: AsyncSession,
    exp: Experiment,
    jobs: list[ExperimentJob],
    states: dict[str, WorkloadState],
) -> None:
    """Replica statuses from their workloads, then the experiment's status derived from them."""
    master_status = None
    message = None
    ran = False
    for job in jobs:
        state = states.get(workload_key(Kind.EXPERIMENT, exp, job.role, job.replica_index))
        if state is None:
            continue
        ran = await _observe_workload(session, job, state) or ran
        crash_point("runs.observe_after_replica_status")
        if job.role == "master":
            master_status = job.last_status
            message = state.message
    derived = experiment_status_from_jobs(
        [j.last_status for j in jobs if j.last_status], master_status
    )
    if derived is not None and derived != exp.last_status:
        await _move_experiment(session, exp, derived, message, ran=ran)
    if is_done(exp.last_status):
        # The experiment is over (its master ended, or a replica failed): the next pass
        # retires the other replicas' workloads, so their rows must not stay running.
        for job in jobs:
            if not is_done(job.last_status):
                await set_status(session, job, Status.STOPPED, message=REPLICA_ENDED, flush=False)
        crash_point("runs.observe_before_commit")


async def _move_experiment(
    session: AsyncSession, exp: Experiment, derived: Status, message: str | None, *, ran: bool
) -> None:
    """To the status derived from its replicas, through `starting` and `running` when it ran."""
    if (derived == Status.RUNNING or ran) and exp.last_status == Status.SCHEDULED:
        await set_status(session, exp, Status.STARTING, flush=False)
    if ran and exp.last_status == Status.STARTING:
        await set_status(session, exp, Status.RUNNING, flush=False)
    message = message if is_done(derived) else None
    await set_status(session, exp, derived, message=message, flush=False)


async def _record_run(session: AsyncSession, row: Any, state: WorkloadState) -> bool:
    """A workload seen for the first time already ended, after running (it has an exit code):
    record `running` before its end, so the history says it ran (a short run can start and end
    between two passes). True when it did."""
    if not (is_done(state.status) and state.exit_code is not None):
        return False
    if row.last_status in NOT_YET_RUNNING:
        return await set_status(session, row, Status.RUNNING, flush=False)
    return False


def _details(state: WorkloadState) -> dict[str, Any]:
    out = {k: v for k, v in state.details.items() if isinstance(v, str | int | float | None)}
    if state.exit_code is not None:
        out["exit_code"] = state.exit_code
    return out
