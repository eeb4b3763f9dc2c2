"""Reconcile experiments, jobs and builds with the runtime's workloads (level-triggered).

One pass: read the runtime's workloads and the active rows, then
- a workload whose row is gone (or done) is stopped and, once ended, cleaned;
- a created row is queued (`scheduled`); queued rows start in id order up to the capacity;
- a row asked to stop has its workloads stopped;
- an observed workload state becomes a status through `set_status` (illegal ones are no-ops);
- a started row whose workload vanished is failed with a message.
Every action is keyed by a deterministic workload key, so a repeated pass is harmless.

One run's trouble stays its own (app/reconciler/retries.py): a workload the runtime cannot
observe, start or stop is skipped for a growing delay while the pass goes on with the others,
named in its run's status message after a few failures, and failed after
`PLX_WORKLOAD_RETRY_TIMEOUT` seconds. A workload whose run is over that cannot be retired is
retried with backoff (and logged) the same way, without holding up the pass.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, literal, or_, select, union_all
from sqlalchemy.exc import SQLAlchemyError

from app.errors import PlxError
from app.faults import crash_point
from app.logic.statuses import DONE, experiment_status_from_jobs, is_done
from app.models import BuildJob, CodeReference, Experiment, ExperimentJob, Job, Project, User
from app.models.base import utcnow
from app.reconciler.retries import report, tracked
from app.runtimes.base import CapacityError, RuntimeError_, WorkloadSpec, WorkloadState
from app.services import leases
from app.services.code import run_workdir
from app.services.logs import remember_secrets
from app.services.runs import (
    append_log,
    log_path,
    outputs_path,
    parse_key,
    run_dir,
    run_env,
    workload_key,
)
from app.services.statuses import mark_locked, set_status, status_values
from app.services.users import create_run_tokens
from app.services.workloads import build_fields, image_name, run_fields

log = logging.getLogger(__name__)

MODELS = {"experiment": Experiment, "job": Job, "build": BuildJob}
QUEUED = "scheduled"
VANISHED = "The run's workload vanished (deleted from outside, or its machine restarted)."
REPLICA_ENDED = "The experiment ended; this replica was stopped."
NO_BUILD = "The local runtime does not build images; the build is recorded as succeeded."
ZOMBIE = "Experiment is in zombie state (no heartbeat was reported)."
SWEEP_BATCH = 400
RECORD = "record the state of"  # what failed when writing what a workload shows failed


WAITING = ("created", QUEUED)
# Rows read per pass beyond the running set: what may start now, and created rows to mark queued.
START_BATCH = 200
QUEUE_BATCH = 500
# Row actions (start, observe, stop) of one pass in flight at once, each with its own session.
PASS_CONCURRENCY = 8
# Starts and observations are done in chunks of up to this many runs, one transaction each:
# their rows locked, leases claimed, tokens and statuses written in a few statements per chunk.
CHUNK = 50


def _active(model: Any, *where: Any) -> Any:
    # IN over the active values, not NOT IN over the done ones: served by the status index.
    active = sorted(status_values(model) - DONE)
    stmt = select(model).where(model.last_status.in_(active), *where)
    if model is Experiment:
        stmt = stmt.where(Experiment.is_managed.is_(True))
    return stmt.order_by(model.id)


def _startable(model: Any) -> Any:
    """Waiting rows not held by a build still in progress (they wait without taking a slot)."""
    stmt = _active(model, model.last_status.in_(WAITING), model.stop_requested.is_(False))
    if model is not BuildJob:
        build_done = (
            select(BuildJob.id)
            .where(BuildJob.id == model.build_job_id, BuildJob.last_status.in_(list(DONE)))
            .exists()
        )
        stmt = stmt.where(or_(model.build_job_id.is_(None), build_done))
    return stmt


@dataclass(frozen=True, slots=True)
class RowFacts:
    """What a pass decides on (its actions re-read the row under its lock): a few columns,
    not the ORM row with its JSON columns, so a pass over many running runs stays cheap."""

    id: int
    uuid: str
    last_status: str | None
    stop_requested: bool = False
    role: str | None = None  # replicas only
    replica_index: int = 0


async def _facts(session: Any, stmt: Any, model: Any) -> list[RowFacts]:
    cols = (model.id, model.uuid, model.last_status, model.stop_requested)
    return [RowFacts(*row) for row in await session.execute(stmt.with_only_columns(*cols))]


async def _load_rows(
    session: Any, workloads: dict[str, WorkloadState], free: int | None
) -> tuple[dict[tuple[str, int], RowFacts], bool]:
    """The rows this pass acts on, not every active row: the cost of a pass follows what runs
    and what may start, not the length of the queue. True when more may start than were read."""
    rows: dict[tuple[str, int], RowFacts] = {}
    for kind, model in MODELS.items():
        # Started (or stopping) rows: bounded by what runs.
        started = or_(model.last_status.not_in(WAITING), model.stop_requested.is_(True))
        for row in await _facts(session, _active(model, started), model):
            rows[(kind, row.id)] = row
    # Rows of workloads that are not active any more (done or deleted), and of workloads whose
    # row still says waiting (a start interrupted after the workload was created).
    unread = {(p[0], p[1]) for p in map(parse_key, workloads) if p} - rows.keys()
    for kind, model in MODELS.items():
        ids = sorted(run_id for k, run_id in unread if k == kind)
        if ids:
            for row in await _facts(session, select(model).where(model.id.in_(ids)), model):
                rows[(kind, row.id)] = row
    limit = START_BATCH if free is None else min(START_BATCH, max(free, 0))
    more = False
    waiting: list[tuple[str, Any]] = []
    for kind, model in MODELS.items():
        # Builds on the local runtime take no slot (they are only recorded): read them all.
        batch = START_BATCH if kind == "build" else limit
        if batch <= 0:
            continue
        # A row whose workload exists is started already (a short run can end before any pass
        # saw it running, its row still `scheduled`): it must not take a start's place.
        stmt = _startable(model)
        has_workload = [run_id for k, run_id in rows if k == kind]
        if has_workload:
            stmt = stmt.where(model.id.not_in(has_workload))
        found = await _facts(session, stmt.limit(batch), model)
        more = more or len(found) == batch
        waiting += [(kind, row) for row in found]
    for kind, row in waiting:
        rows.setdefault((kind, row.id), row)
    return rows, more


async def _replica_facts(session: Any, exp_ids: list[int]) -> dict[int, list[RowFacts]]:
    """The replicas of these experiments (id order), as facts, by experiment."""
    found: dict[int, list[RowFacts]] = {}
    if not exp_ids:
        return found
    job = ExperimentJob
    stmt = (
        select(job.experiment_id, job.id, job.uuid, job.last_status, job.role, job.replica_index)
        .where(job.experiment_id.in_(exp_ids))
        .order_by(job.id)
    )
    for exp_id, *facts in await session.execute(stmt):
        row_id, uuid, status, role, index = facts
        found.setdefault(exp_id, []).append(RowFacts(row_id, uuid, status, False, role, index))
    return found


def _would_change(
    kind: str, row: RowFacts, states: dict[str, WorkloadState], replicas: list[RowFacts]
) -> bool:
    """Whether observing the run could write anything: some workload's status differs from its
    row's, or the experiment's status derived from its replicas differs from its own. A pass
    skips the (locking) observation of every run where nothing changed."""
    if kind != "experiment":
        return any(state.status != row.last_status for state in states.values())
    statuses = []
    master = None
    for job in replicas:
        state = states.get(workload_key("experiment", row, job.role, job.replica_index))
        if state is not None and state.status != job.last_status:
            return True
        if job.last_status:
            statuses.append(job.last_status)
        if job.role == "master":
            master = job.last_status
    derived = experiment_status_from_jobs(statuses, master)
    return derived is not None and derived != row.last_status


async def _created_ids(session: Any) -> tuple[list[tuple[str, int]], bool]:
    """Created rows (a batch, id order) and whether more remain: candidates to mark queued.
    One round trip for the three run tables."""
    parts = []
    for kind, model in MODELS.items():
        stmt = _active(model, model.last_status == "created", model.stop_requested.is_(False))
        stmt = stmt.with_only_columns(literal(kind).label("kind"), model.id.label("id"))
        parts.append(select(stmt.limit(QUEUE_BATCH + 1).subquery()))
    rows = (await session.execute(union_all(*parts))).all()
    found = sorted(((kind, run_id) for kind, run_id in rows), key=lambda r: r[1])
    return found[:QUEUE_BATCH], len(found) > QUEUE_BATCH


async def _mark_queued(rec: Any, candidates: list[tuple[str, int]]) -> None:
    """Created rows that could not start this pass wait as `scheduled` (v0's queued): one
    transaction for the batch, its rows locked in one statement per kind and re-checked."""
    async with rec.session() as session:
        for fresh in (await _lock_many(session, candidates)).values():
            if fresh.last_status == "created" and not fresh.stop_requested:
                await set_status(session, fresh, QUEUED, flush=False)
        crash_point("runs.queue_before_commit")


async def reconcile_runs(rec: Any) -> None:
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
        rows, more = await _load_rows(session, workloads, free)
        created, more_created = await _created_ids(session)
        keys = [parse_key(key) for key in workloads]
        observed = {key[1] for key in keys if key and key[0] == "experiment"}
        exp_ids = sorted(i for k, i in rows if k == "experiment" and i in observed)
        replicas = await _replica_facts(session, exp_ids)
    by_run: dict[tuple[str, int], dict[str, WorkloadState]] = {}
    retires: list[tuple[str, Any]] = []
    grace = rec.settings.stop_grace_seconds
    for key, state in workloads.items():
        kind, run_id, uuid8, _, _ = parse_key(key)  # type: ignore[misc]
        row = rows.get((kind, run_id))
        if row is None or row.uuid[:8] != uuid8 or is_done(row.last_status):
            if rec.retries.due(key):
                retire = _retire(rec.runtime, key, state, grace)
                retires.append((f"retire {key}", _tracked(rec, key, "stop", retire)))
            continue
        by_run.setdefault((kind, run_id), {})[key] = state
    # Each action is its own unit of work on its own rows: they run side by side (a pass costs
    # about its slowest action, not their sum), at most `width` at a time. Retires first: they
    # free the slots that this pass's starts may take.
    width = 1 if rec.settings.database_url.startswith("sqlite") else PASS_CONCURRENCY
    await _run_all(retires, width)

    crash_point("runs.after_listing")
    actions: list[tuple[str, Any]] = []
    observes: list[tuple[str, int, dict[str, WorkloadState]]] = []
    starts: list[tuple[str, int]] = []
    for (kind, run_id), row in sorted(rows.items(), key=lambda item: item[0][1]):
        if is_done(row.last_status):
            continue
        key = run_key(kind, run_id)
        if not rec.retries.due(key):
            continue  # failed lately: its turn comes after its delay, the others go on
        states = by_run.get((kind, run_id), {})
        broken = {k: state.error for k, state in states.items() if state.error}
        if row.stop_requested:
            # A stop goes ahead even when the workload cannot be observed: it may still end it.
            stop = _stop(rec, kind, row, states)
            actions.append((f"stop {key}", _tracked(rec, key, "stop", stop, run=(kind, run_id))))
        elif broken:
            workload, error = next(iter(broken.items()))
            failure = rec.retries.failed(key, "observe", error, subject=workload)
            actions.append((f"trouble {key}", _report(rec, kind, run_id, failure)))
        elif kind == "build" and runtime.name == "local":
            build = _finish_local_build(rec, row)
            actions.append(
                (f"build {run_id}", _tracked(rec, key, RECORD, build, run=(kind, run_id)))
            )
        elif states:
            rec.retries.succeeded(key, "observe", "start")  # its workloads are observed now
            if _would_change(kind, row, states, replicas.get(run_id, [])):
                observes.append((kind, run_id, states))
        elif row.last_status in WAITING:
            if capacity is None or running + len(starts) < capacity:
                starts.append((kind, run_id))
        else:
            vanished = _vanished(rec, kind, row)
            actions.append(
                (f"vanished {key}", _tracked(rec, key, "observe", vanished, run=(kind, run_id)))
            )
    actions += [
        (f"observe {len(chunk)} runs", _observe_chunk(rec, chunk))
        for chunk in _chunks(observes, width)
    ]
    start_chunks = [
        (f"start {len(chunk)} runs", _start_chunk(rec, chunk)) for chunk in _chunks(starts, width)
    ]
    outcomes = await _run_all([*actions, *start_chunks], width)
    attempted = set(starts)
    started = sum(n for n in outcomes[len(actions) :] if isinstance(n, int))
    running += started
    # What could not start now waits as `scheduled`: no capacity, a build in progress, a batch
    # beyond this pass's.
    still_created = [c for c in created if c not in attempted]
    if still_created:
        await _mark_queued(rec, still_created)
    room = capacity is None or running < capacity
    if more_created or (more and started and room):
        rec.wake()  # a full batch was read and progress made: the rest is the next pass's


def run_key(kind: str, run_id: int) -> str:
    """The key a run's failures are counted under (its workloads' keys start with it)."""
    return f"{kind}-{run_id}"


async def _tracked(
    rec: Any, key: str, what: str, action: Any, *, run: tuple[str, int] | None = None
) -> Any:
    """`tracked`, the failure told on the run's row when `run` is given."""

    async def tell(failure: Any) -> None:
        if run is not None:
            await _report(rec, run[0], run[1], failure)

    return await tracked(rec, key, what, action, on_failure=tell)


async def _trouble(
    rec: Any, kind: str, run_id: int, what: str, exc: BaseException, *, subject: str | None = None
) -> None:
    failure = rec.retries.failed(run_key(kind, run_id), what, exc, subject=subject)
    await _report(rec, kind, run_id, failure)


async def _report(rec: Any, kind: str, run_id: int, failure: Any) -> None:
    async def load(session: Any) -> Any:
        return await _lock(session, kind, run_id)

    async def give_up(session: Any, row: Any, message: str) -> None:
        if kind == "experiment":
            for job in await _locked_replicas(session, row):
                await set_status(session, job, "failed", message=message)
        await set_status(session, row, "failed", message=message)

    await report(rec, failure, load, give_up)


def _chunks(items: list[Any], width: int) -> list[list[Any]]:
    """`items` cut into about `width` chunks of at most CHUNK, so the pass's concurrency is used."""
    size = min(CHUNK, max(1, -(-len(items) // width)))
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _run_all(jobs: list[tuple[str, Any]], width: int) -> list[Any]:
    gate = asyncio.Semaphore(width)

    async def one(label: str, action: Any) -> Any:
        async with gate:
            try:
                return await action
            except Exception:
                log.exception("reconciling (%s) failed", label)
                return None

    return await asyncio.gather(*(one(*job) for job in jobs))


async def _each_alone(
    rec: Any, step: Any, items: list[Any], what: str, *, clears: bool = False
) -> list[Any]:
    """`step(items)` in one transaction; if that fails, `step([item])` for each item, so one
    row that breaks the chunk (bad data, a constraint) does not hold back the others. The
    failure of one alone is that run's (retried with backoff, told, given up on); `clears`:
    the success of the step is the success of `what` for its runs."""
    try:
        done = await step(items)
    except Exception as exc:
        if len(items) == 1:
            await _trouble(rec, items[0][0], items[0][1], what, exc)
            return []
        log.exception("%s of %d runs together failed; each alone now", what, len(items))
    else:
        for item in items if clears else ():
            rec.retries.succeeded(run_key(item[0], item[1]), what)
        return done
    done = []
    for item in items:
        try:
            done += await step([item])
        except Exception as exc:
            await _trouble(rec, item[0], item[1], what, exc)
        else:
            if clears:
                rec.retries.succeeded(run_key(item[0], item[1]), what)
    return done


async def _retire(runtime: Any, key: str, state: WorkloadState, grace: float) -> None:
    """Stop (if alive) and clean up a workload whose run is done or gone."""
    crash_point("runs.retire_before_stop")
    if not state.done:
        await runtime.stop(key, grace_seconds=grace)
        state = await runtime.observe(key) or state
    crash_point("runs.retire_before_cleanup")
    if state.done:
        await runtime.cleanup(key)


async def _reload(session: Any, kind: str, row: Any) -> Any:
    return await _lock(session, kind, row.id)


async def _lock(session: Any, kind: str, run_id: int) -> Any:
    # Locked first (FOR NO KEY UPDATE, as set_status does): an experiment before its jobs, the
    # lock order every writer keeps (app/services/statuses.py lock_row). Recorded, so
    # set_status does not read the row under its lock a second time.
    fresh = await session.get(
        MODELS[kind], run_id, populate_existing=True, with_for_update={"key_share": True}
    )
    if fresh is not None:
        mark_locked(session, fresh)
    return fresh


async def _lock_many(session: Any, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Any]:
    """The rows of `keys` locked (as `_lock`), one statement per kind, each kind's rows in
    ascending id order: the order every writer locks several runs in."""
    rows: dict[tuple[str, int], Any] = {}
    for kind, model in MODELS.items():
        ids = sorted({run_id for k, run_id in keys if k == kind})
        if not ids:
            continue
        stmt = (
            select(model)
            .where(model.id.in_(ids))
            .order_by(model.id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        for row in await session.scalars(stmt):
            mark_locked(session, row)
            rows[(kind, row.id)] = row
    return rows


async def _locked_replicas(session: Any, exp: Experiment) -> list[ExperimentJob]:
    """The experiment's replica rows, locked in id order (the experiment is locked already)."""
    return (await _replicas_of(session, [exp.id])).get(exp.id, [])


async def _replicas_of(
    session: Any, exp_ids: list[int], *, lock: bool = True
) -> dict[int, list[ExperimentJob]]:
    """The replica rows of these experiments in id order, by experiment; `lock`: locked too
    (the experiments must be locked already: an experiment before its jobs)."""
    if not exp_ids:
        return {}
    stmt = (
        select(ExperimentJob)
        .where(ExperimentJob.experiment_id.in_(exp_ids))
        .order_by(ExperimentJob.id)
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update(key_share=True)
    jobs: dict[int, list[ExperimentJob]] = {}
    for job in await session.scalars(stmt):
        if lock:
            mark_locked(session, job)
        jobs.setdefault(job.experiment_id, []).append(job)
    return jobs


async def _load_many(session: Any, model: Any, ids: set[Any]) -> None:
    """Read these rows into the session in one statement: later `session.get`s are free."""
    ids.discard(None)
    if ids:
        await session.scalars(select(model).where(model.id.in_(sorted(ids))))


async def _finish_local_build(rec: Any, row: Any) -> None:
    async with rec.session() as session:
        fresh = await _reload(session, "build", row)
        if fresh is not None and await set_status(session, fresh, "succeeded", message=NO_BUILD):
            # `logs --past` of a build shows why nothing was built (v0 answered 404 on no log).
            append_log(rec.settings, "build", fresh.id, NO_BUILD)


async def _build_gate(session: Any, row: Any) -> str | None:
    """None when the run may start; else 'wait' or the failure message of its build."""
    build_id = getattr(row, "build_job_id", None)
    if build_id is None:
        return None
    build = await session.get(BuildJob, build_id)
    if build is None or build.last_status == "succeeded":
        return None
    if build.last_status in ("failed", "stopped"):
        return f"Its build {build.id} ended `{build.last_status}`."
    return "wait"


async def _start_chunk(rec: Any, items: list[tuple[str, int]]) -> int:
    """Start these runs: one transaction queues them and writes their tokens (committed before
    anything starts), then their workloads are created. How many runs got a workload."""
    plans = await _each_alone(rec, lambda part: _prepare_starts(rec, part), items, "start")
    # The queued statuses are committed before anything starts: a crash from here on leaves
    # queued rows whose deterministic keys the next pass starts (or adopts).
    crash_point("runs.start_after_queued_commit")
    started = 0
    for kind, run_id, specs in plans:
        started += await _launch(rec, kind, run_id, specs)
    if plans:
        rec.wake()
    return started


async def _prepare_starts(
    rec: Any, items: list[tuple[str, int]]
) -> list[tuple[str, int, list[WorkloadSpec]]]:
    """Lock, claim, gate on builds, write tokens and `scheduled`, and build the workload specs
    of these runs, in one transaction and a few statements for all of them."""
    settings = rec.settings
    plans: list[tuple[str, int, list[WorkloadSpec]]] = []
    troubles: list[tuple[str, int, Exception]] = []
    async with rec.session() as session:
        locked = await _lock_many(session, items)
        rows = [
            (kind, locked[(kind, run_id)])
            for kind, run_id in items
            if (kind, run_id) in locked
            and not locked[(kind, run_id)].stop_requested
            and not is_done(locked[(kind, run_id)].last_status)
        ]
        holder = leases.holder_of(rec)
        names = {f"start:{kind}:{row.id}": (kind, row) for kind, row in rows}
        # Another replica is starting what it holds (Postgres only).
        claimed = await leases.claim_many(session, list(names), holder)
        rows = [names[name] for name in names if name in claimed]
        await _load_many(session, BuildJob, {getattr(row, "build_job_id", None) for _, row in rows})
        ready = []
        for kind, row in rows:
            gate = await _build_gate(session, row)
            if gate is None:
                ready.append((kind, row))
            elif gate != "wait":
                await set_status(session, row, "failed", message=gate, flush=False)
            elif row.last_status == "created":
                await set_status(session, row, QUEUED, flush=False)
        found = await session.execute(
            select(Project.id, Project, User)
            .join(User, User.id == Project.user_id)
            .where(Project.id.in_({row.project_id for _, row in ready}))
        )
        owners = {pid: (project, owner) for pid, project, owner in found}
        crash_point("runs.start_before_token")
        await _load_many(session, User, {row.user_id for _, row in ready})
        users = {row.user_id: await session.get(User, row.user_id) for _, row in ready}
        tokens = await create_run_tokens(
            session, [(users[row.user_id], kind, row.id) for kind, row in ready]
        )
        for _, row in ready:
            if row.last_status == "created":
                await set_status(session, row, QUEUED, flush=False)
        crash_point("runs.start_before_queued_commit")
        exp_ids = [row.id for kind, row in ready if kind == "experiment"]
        replicas = await _replicas_of(session, exp_ids, lock=False)
        await _load_many(session, CodeReference, {row.code_reference_id for _, row in ready})
        for kind, row in ready:
            project, owner = owners[row.project_id]
            build = None
            if getattr(row, "build_job_id", None) is not None:
                build = await session.get(BuildJob, row.build_job_id)
            token = tokens[(kind, row.id)]
            jobs: list[ExperimentJob | None] = (
                replicas.get(row.id, []) if kind == "experiment" else [None]
            )
            try:
                specs = [
                    _spec(settings, kind, row, owner, project, token, job, rec.runtime.name, build)
                    for job in jobs
                ]
                specs = await _with_code(settings, kind, row, rec.runtime.name, session, specs)
            except (PlxError, RuntimeError_) as exc:
                await set_status(session, row, "failed", message=exc.message, flush=False)
                continue
            except SQLAlchemyError:
                raise  # the transaction is broken: `_each_alone` retries each run alone
            except Exception as exc:  # this run's trouble (e.g. its code cannot be copied)
                troubles.append((kind, row.id, exc))
                continue
            plans.append((kind, row.id, specs))
    # Told once the transaction is over (SQLite has one writer: this one, until now).
    for kind, run_id, exc in troubles:
        await _trouble(rec, kind, run_id, "start", exc)
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
                await _trouble(rec, kind, run_id, "start", exc, subject=spec.key)
                return started
            async with rec.session() as session:
                fresh = await _lock(session, kind, run_id)
                if fresh is not None:
                    await set_status(session, fresh, "failed", message=exc.message)
            return started
        except Exception as exc:  # this workload's trouble: the other runs start regardless
            await _trouble(rec, kind, run_id, "start", exc, subject=spec.key)
            return started
    rec.retries.succeeded(run_key(kind, run_id))
    crash_point("runs.start_after_all_workloads")
    return started


async def _with_code(settings, kind, row, runtime, session, specs):
    """Point the specs at the run's own code version (local: a writable copy of it)."""
    code = row.code_reference_id and await session.get(CodeReference, row.code_reference_id)
    if not code:
        return specs
    specs = [replace(spec, code_reference=code.commit) for spec in specs]
    if runtime != "local" or kind not in ("experiment", "job"):
        return specs
    workdir = await run_workdir(settings, row.project_id, code, run_dir(settings, kind, row.id))
    return [replace(spec, workdir=str(workdir)) for spec in specs]


def _spec(settings, kind, row, owner, project, token, job, runtime, build) -> WorkloadSpec:
    project_unique = f"{owner.username}.{project.name}"
    if kind == "experiment":
        group = row.experiment_group_id
        unique = f"{project_unique}.{group}.{row.id}" if group else f"{project_unique}.{row.id}"
        source = (row.run_env or {}).get("outputs_from", row.id)
        outputs = outputs_path(settings, "experiment", source)
        replica = f"{job.role}-{job.replica_index}"
        logs = log_path(settings, "experiment", row.id, replica)
        key = workload_key(kind, row, job.role, job.replica_index)
        role, index = job.role, job.replica_index
    else:
        group = None
        unique = f"{project_unique}.{kind}s.{row.id}"
        outputs = outputs_path(settings, kind, row.id)
        logs = log_path(settings, kind, row.id)
        key = workload_key(kind, row)
        role, index = "main", 0
    config = row.config or {}
    run = config.get("run") or {}
    cmd = run.get("cmd")
    command = " && ".join(cmd) if isinstance(cmd, list) else cmd
    if kind == "experiment" and isinstance(cmd, str | list):
        from app.logic.polyaxonfile import experiment_spec_for

        rendered, _ = experiment_spec_for(config, row.declarations or {})
        command = rendered.command
    env = run_env(
        settings,
        kind=kind,
        run_id=row.id,
        unique_name=unique,
        username=owner.username,
        project=project.name,
        token=token,
        declarations=getattr(row, "declarations", None),
        outputs=outputs,
        group_id=group,
    )
    remember_secrets(settings, kind, row.id, [token])  # masked in its logs (services.logs)
    if kind == "build" and runtime == "kubernetes":
        extra = build_fields(
            row, registry=settings.k8s_registry, project=project.name, project_id=project.id
        )
    elif kind == "build":
        build_config = config.get("build") or {}
        extra = {"image": build_config.get("image"), "dockerfile": build_config.get("dockerfile")}
    else:
        image, pod_name = None, None
        if runtime == "kubernetes":
            if build is not None:
                image = image_name(settings.k8s_registry, project.name, project.id, build.uuid)
            uuid = row.uuid

            def pod_name(r: str, i: int) -> str:
                return f"plxjob-{r}{i}-{uuid}"  # the replica's pod and service (v0 7.1)

        extra = run_fields(
            row,
            kind=kind,
            role=role,
            index=index,
            replica_resources=job.resources if job is not None else None,
            image=image,
            pod_name=pod_name,
        )
    env.update(extra.pop("env", {}))
    return WorkloadSpec(
        key=key,
        kind=kind,
        run_id=row.id,
        uuid=row.uuid,
        unique_name=unique,
        username=owner.username,
        project=project.name,
        role=role,
        replica_index=index,
        command=command,
        env=env,
        outputs_path=str(outputs),
        log_path=str(logs),
        group_id=group,
        **extra,
    )


async def _observe_chunk(rec: Any, items: list[tuple[str, int, dict[str, WorkloadState]]]) -> None:
    step = lambda part: _observe_batch(rec, part)  # noqa: E731
    await _each_alone(rec, step, items, RECORD, clears=True)


async def _observe_batch(
    rec: Any, items: list[tuple[str, int, dict[str, WorkloadState]]]
) -> list[Any]:
    """Write what the workloads of these runs show, one transaction for all of them: rows and
    replicas locked in two statements, statuses sent in one flush at commit."""
    async with rec.session() as session:
        rows = await _lock_many(session, [(kind, run_id) for kind, run_id, _ in items])
        exp_ids = [
            run_id for kind, run_id, _ in items if (kind, run_id) in rows and kind == "experiment"
        ]
        replicas = await _replicas_of(session, exp_ids)
        for kind, run_id, states in items:
            fresh = rows.get((kind, run_id))
            if fresh is None:
                continue
            crash_point("runs.observe_before_status")
            if kind == "experiment":
                await _observe_experiment(session, fresh, replicas.get(fresh.id, []), states)
                continue
            state = next(iter(states.values()))
            await _record_run(session, fresh, state)
            await set_status(
                session,
                fresh,
                state.status,
                message=state.message,
                details=_details(state),
                flush=False,
            )
    return []


async def _observe_experiment(
    session: Any, exp: Experiment, jobs: list[ExperimentJob], states: dict[str, WorkloadState]
) -> None:
    """Replica statuses from their workloads, then the experiment's status derived from them."""
    master_status = None
    message = None
    ran = False
    for job in jobs:
        state = states.get(workload_key("experiment", exp, job.role, job.replica_index))
        if state is None:
            continue
        ran = await _record_run(session, job, state) or ran
        await set_status(
            session, job, state.status, message=state.message, details=_details(state), flush=False
        )
        crash_point("runs.observe_after_replica_status")
        if job.role == "master":
            master_status = job.last_status
            message = state.message
    derived = experiment_status_from_jobs(
        [j.last_status for j in jobs if j.last_status], master_status
    )
    if derived is not None and derived != exp.last_status:
        if (derived == "running" or ran) and exp.last_status == QUEUED:
            await set_status(session, exp, "starting", flush=False)
        if ran and exp.last_status == "starting":
            await set_status(session, exp, "running", flush=False)
        message = message if is_done(derived) else None
        await set_status(session, exp, derived, message=message, flush=False)
    if is_done(exp.last_status):
        # The experiment is over (its master ended, or a replica failed): the next pass
        # retires the other replicas' workloads, so their rows must not stay running.
        for job in jobs:
            if not is_done(job.last_status):
                await set_status(session, job, "stopped", message=REPLICA_ENDED, flush=False)
        crash_point("runs.observe_before_commit")


async def _record_run(session: Any, row: Any, state: WorkloadState) -> bool:
    """A workload seen for the first time already ended, after running (it has an exit code):
    record `running` before its end, so the history says it ran (a short run can start and end
    between two passes). True when it did."""
    if not (is_done(state.status) and state.exit_code is not None):
        return False
    if row.last_status in ("created", QUEUED, "starting", "building"):
        return await set_status(session, row, "running", flush=False)
    return False


def _details(state: WorkloadState) -> dict[str, Any]:
    out = {k: v for k, v in state.details.items() if isinstance(v, str | int | float | None)}
    if state.exit_code is not None:
        out["exit_code"] = state.exit_code
    return out


async def _stop(rec: Any, kind: str, row: Any, states: dict[str, WorkloadState]) -> None:
    crash_point("runs.stop_before_signal")
    for key, state in states.items():
        if not state.done:
            await rec.runtime.stop(key, grace_seconds=rec.settings.stop_grace_seconds)
            crash_point("runs.stop_after_signal")
    async with rec.session() as session:
        fresh = await _reload(session, kind, row)
        if fresh is None:
            return
        if kind == "experiment":
            for job in await _locked_replicas(session, fresh):
                await set_status(session, job, "stopped", message="Stopped on request.")
        message = "Experiment was stopped." if kind == "experiment" else "Stopped on request."
        await set_status(session, fresh, "stopped", message=message)
    for key in states:
        # Beside the stop, which is recorded: a failure here is left to the retire of a later
        # pass (the run is done, so its workloads are retired), never undoes the stop.
        try:
            state = await rec.runtime.observe(key)
            if state is not None and state.done:
                await rec.runtime.cleanup(key)
        except Exception as exc:
            log.warning("cleanup of %s after its stop failed (retried later): %r", key, exc)


async def _vanished(rec: Any, kind: str, row: Any) -> None:
    async with rec.session() as session:
        fresh = await _reload(session, kind, row)
        if fresh is None or is_done(fresh.last_status) or fresh.last_status in ("created", QUEUED):
            return
        jobs: list[Any] = []
        keys = [workload_key(kind, fresh)]
        if kind == "experiment":
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
            await set_status(session, job, "failed", message=VANISHED)
        await set_status(session, fresh, "failed", message=VANISHED)


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
            .where(Experiment.last_status == "running", stale)
            .order_by(Experiment.id)
            .limit(SWEEP_BATCH)
        )
        for exp in rows:
            # set_status is compare-and-set: a run that ended meanwhile stays as it ended.
            if await set_status(session, exp, "failed", message=ZOMBIE):
                exp.stop_requested = exp.is_managed  # the run step stops what may still run
                for job in await session.scalars(
                    select(ExperimentJob).where(ExperimentJob.experiment_id == exp.id)
                ):
                    await set_status(session, job, "failed", message=ZOMBIE)
    rec.wake()


RUN_STEPS = [reconcile_runs, sweep_stale_heartbeats]
