"""Starting runs: queue them, write their tokens, then create their workloads.

One transaction per chunk locks the rows, claims their start leases (another replica may be
starting them), gates each on its build, writes the tokens and `scheduled`, and builds the
workload specs; it is committed before anything starts, so a crash from there on leaves queued
rows whose deterministic keys the next pass starts (or adopts).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import PlxError
from app.faults import crash_point
from app.kinds import Kind
from app.logic.statuses import Status, is_done
from app.models import BuildJob, CodeReference, ExperimentJob, Project, User
from app.reconciler.locking import RunRef, load_many, lock_run, lock_runs, replicas_of
from app.reconciler.run_actions import each_alone, run_key, trouble
from app.reconciler.specs import RunOwner, RunStart, with_code, workload_spec
from app.runtimes.base import CapacityError, RuntimeError_, WorkloadSpec
from app.services import leases
from app.services.statuses import set_status
from app.services.users import create_run_tokens

log = logging.getLogger(__name__)

WAIT = "wait"  # what `build_gate` says while the run's build is in progress
StartPlan = tuple[str, int, list[WorkloadSpec]]  # (kind, run id, its workloads' specs)


async def mark_queued(rec: Any, candidates: list[RunRef]) -> None:
    """Created rows that could not start this pass wait as `scheduled` (v0's queued): one
    transaction for the batch, its rows locked in one statement per kind and re-checked."""
    async with rec.session() as session:
        for fresh in (await lock_runs(session, candidates)).values():
            if fresh.last_status == Status.CREATED and not fresh.stop_requested:
                await set_status(session, fresh, Status.SCHEDULED, flush=False)
        crash_point("runs.queue_before_commit")


async def start_chunk(rec: Any, items: list[RunRef]) -> int:
    """Start these runs. How many runs got a workload."""
    plans = await each_alone(rec, lambda part: _prepare_starts(rec, part), items, "start")
    crash_point("runs.start_after_queued_commit")
    started = 0
    for kind, run_id, specs in plans:
        started += await _launch(rec, kind, run_id, specs)
    if plans:
        rec.wake()
    return started


async def build_gate(session: AsyncSession, row: Any) -> str | None:
    """None when the run may start; else WAIT or the failure message of its build."""
    build_id = getattr(row, "build_job_id", None)
    if build_id is None:
        return None
    build = await session.get(BuildJob, build_id)
    if build is None or build.last_status == Status.SUCCEEDED:
        return None
    if build.last_status in (Status.FAILED, Status.STOPPED):
        return f"Its build {build.id} ended `{build.last_status}`."
    return WAIT


async def _claimed_rows(rec: Any, session: AsyncSession, items: list[RunRef]) -> list[Any]:
    """The rows of `items` still to start, locked, whose start lease this replica holds."""
    locked = await lock_runs(session, items)
    rows = [
        (kind, locked[(kind, run_id)])
        for kind, run_id in items
        if (kind, run_id) in locked
        and not locked[(kind, run_id)].stop_requested
        and not is_done(locked[(kind, run_id)].last_status)
    ]
    names = {f"start:{kind}:{row.id}": (kind, row) for kind, row in rows}
    # Another replica is starting what it holds (Postgres only).
    claimed = await leases.claim_many(session, list(names), leases.holder_of(rec))
    return [names[name] for name in names if name in claimed]


async def _ready_rows(session: AsyncSession, rows: list[Any]) -> list[Any]:
    """The rows whose build allows them to start; the others fail or wait queued."""
    await load_many(session, BuildJob, {getattr(row, "build_job_id", None) for _, row in rows})
    ready = []
    for kind, row in rows:
        gate = await build_gate(session, row)
        if gate is None:
            ready.append((kind, row))
        elif gate != WAIT:
            await set_status(session, row, Status.FAILED, message=gate, flush=False)
        elif row.last_status == Status.CREATED:
            await set_status(session, row, Status.SCHEDULED, flush=False)
    return ready


async def _owners(session: AsyncSession, ready: list[Any]) -> dict[int, RunOwner]:
    """The projects of these rows and their owners, by project id."""
    found = await session.execute(
        select(Project.id, Project, User)
        .join(User, User.id == Project.user_id)
        .where(Project.id.in_({row.project_id for _, row in ready}))
    )
    return {pid: RunOwner(project, owner) for pid, project, owner in found}


async def _tokens(session: AsyncSession, ready: list[Any]) -> dict[RunRef, str]:
    """A run token for each row, made for the row's creator."""
    ids = sorted({row.user_id for _, row in ready})
    users = {user.id: user for user in await session.scalars(select(User).where(User.id.in_(ids)))}
    return await create_run_tokens(
        session, [(users[row.user_id], kind, row.id) for kind, row in ready]
    )


async def _specs_of(
    rec: Any,
    session: AsyncSession,
    kind: str,
    row: Any,
    owner: RunOwner,
    token: str,
    replicas: list[ExperimentJob],
) -> list[WorkloadSpec]:
    build = None
    if getattr(row, "build_job_id", None) is not None:
        build = await session.get(BuildJob, row.build_job_id)
    caps = rec.runtime.capabilities
    start = RunStart(owner, token, build)
    jobs: list[ExperimentJob | None] = list(replicas) if kind == Kind.EXPERIMENT else [None]
    specs = [workload_spec(rec.settings, caps, kind, row, start=start, job=job) for job in jobs]
    return await with_code(session, rec.settings, caps, kind, row, specs)


async def _prepare_starts(rec: Any, items: list[RunRef]) -> list[StartPlan]:
    """Lock, claim, gate on builds, write tokens and `scheduled`, and build the workload specs
    of these runs, in one transaction and a few statements for all of them."""
    plans: list[StartPlan] = []
    troubles: list[tuple[str, int, Exception]] = []
    async with rec.session() as session:
        ready = await _ready_rows(session, await _claimed_rows(rec, session, items))
        owners = await _owners(session, ready)
        crash_point("runs.start_before_token")
        tokens = await _tokens(session, ready)
        for _, row in ready:
            if row.last_status == Status.CREATED:
                await set_status(session, row, Status.SCHEDULED, flush=False)
        crash_point("runs.start_before_queued_commit")
        exp_ids = [row.id for kind, row in ready if kind == Kind.EXPERIMENT]
        replicas = await replicas_of(session, exp_ids, lock=False)
        await load_many(session, CodeReference, {row.code_reference_id for _, row in ready})
        for kind, row in ready:
            owner, token = owners[row.project_id], tokens[(kind, row.id)]
            try:
                specs = await _specs_of(
                    rec, session, kind, row, owner, token, replicas.get(row.id, [])
                )
            except (PlxError, RuntimeError_) as exc:
                await set_status(session, row, Status.FAILED, message=exc.message, flush=False)
                continue
            except SQLAlchemyError:
                raise  # the transaction is broken: `each_alone` retries each run alone
            except Exception as exc:  # this run's trouble (e.g. its code cannot be copied)
                troubles.append((kind, row.id, exc))
                continue
            plans.append((kind, row.id, specs))
    # Told once the transaction is over (SQLite has one writer: this one, until now).
    for kind, run_id, error in troubles:
        await trouble(rec, kind, run_id, "start", error)
    return plans


async def _launch(rec: Any, kind: str, run_id: int, specs: list[WorkloadSpec]) -> int:
    """Create a run's workloads (a retryable failure leaves it for a later pass; another one
    fails the run). 1 when at least one workload was created."""
    started = 0
    for spec in specs:
        try:
            crash_point("runs.start_before_workload")
            await rec.runtime.start(spec)
            crash_point("runs.start_after_workload")
            started = 1
        except CapacityError as exc:  # a full runtime: the run waits its turn, nothing failed
            log.info("start of %s deferred: %s", spec.key, exc.message)
            return started
        except RuntimeError_ as exc:
            if exc.retryable:
                await trouble(rec, kind, run_id, "start", exc, subject=spec.key)
                return started
            async with rec.session() as session:
                fresh = await lock_run(session, kind, run_id)
                if fresh is not None:
                    await set_status(session, fresh, Status.FAILED, message=exc.message)
            return started
        except Exception as exc:  # this workload's trouble: the other runs start regardless
            await trouble(rec, kind, run_id, "start", exc, subject=spec.key)
            return started
    rec.retries.succeeded(run_key(kind, run_id))
    crash_point("runs.start_after_all_workloads")
    return started
