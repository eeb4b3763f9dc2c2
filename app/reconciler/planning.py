"""What one pass of the run step reads and decides on, before any action.

A pass reads the few columns it decides on (`RowFacts`), not the ORM rows with their JSON
columns, and only the rows it may act on: those that run (bounded by what runs), those of
listed workloads, and a batch of those that may start. Its actions re-read their rows under
their locks (app/reconciler/locking.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.kinds import Kind
from app.logic.statuses import DONE, Status, experiment_status_from_jobs
from app.models import BuildJob, Experiment, ExperimentJob
from app.reconciler.locking import RUN_MODELS, RunRef
from app.runtimes.base import WorkloadState
from app.services.runs import parse_key, workload_key
from app.services.statuses import status_values

WAITING = (Status.CREATED, Status.SCHEDULED)
# Rows read per pass beyond the running set: what may start now, and created rows to mark queued.
START_BATCH = 200
QUEUE_BATCH = 500


@dataclass(frozen=True, slots=True)
class RowFacts:
    """The columns of a run (or replica) a pass decides on."""

    id: int
    uuid: str
    last_status: str | None
    stop_requested: bool = False
    role: str | None = None  # replicas only
    replica_index: int = 0


def active(model: Any, *where: Any) -> Any:
    """The model's active rows in id order (managed experiments only)."""
    # IN over the active values, not NOT IN over the done ones: served by the status index.
    values = sorted(status_values(model) - DONE)
    stmt = select(model).where(model.last_status.in_(values), *where)
    if model is Experiment:
        stmt = stmt.where(Experiment.is_managed.is_(True))
    return stmt.order_by(model.id)


def startable(model: Any) -> Any:
    """Waiting rows not held by a build still in progress (they wait without taking a slot)."""
    stmt = active(model, model.last_status.in_(WAITING), model.stop_requested.is_(False))
    if model is not BuildJob:
        build_done = (
            select(BuildJob.id)
            .where(BuildJob.id == model.build_job_id, BuildJob.last_status.in_(list(DONE)))
            .exists()
        )
        stmt = stmt.where(or_(model.build_job_id.is_(None), build_done))
    return stmt


async def _facts(session: AsyncSession, stmt: Any, model: Any) -> list[RowFacts]:
    cols = (model.id, model.uuid, model.last_status, model.stop_requested)
    return [RowFacts(*row) for row in await session.execute(stmt.with_only_columns(*cols))]


async def _started_rows(session: AsyncSession) -> dict[RunRef, RowFacts]:
    """Started (or stopping) rows: bounded by what runs."""
    rows: dict[RunRef, RowFacts] = {}
    for kind, model in RUN_MODELS.items():
        started = or_(model.last_status.not_in(WAITING), model.stop_requested.is_(True))
        for row in await _facts(session, active(model, started), model):
            rows[(kind, row.id)] = row
    return rows


async def _rows_of_workloads(
    session: AsyncSession, workloads: dict[str, WorkloadState], known: set[RunRef]
) -> dict[RunRef, RowFacts]:
    """Rows of workloads that are not active any more (done or deleted), and of workloads whose
    row still says waiting (a start interrupted after the workload was created)."""
    unread = {(p[0], p[1]) for p in map(parse_key, workloads) if p} - known
    rows: dict[RunRef, RowFacts] = {}
    for kind, model in RUN_MODELS.items():
        ids = sorted(run_id for k, run_id in unread if k == kind)
        if ids:
            for row in await _facts(session, select(model).where(model.id.in_(ids)), model):
                rows[(kind, row.id)] = row
    return rows


async def _waiting_rows(
    session: AsyncSession, known: set[RunRef], limit: int, unlimited_kinds: frozenset[str]
) -> tuple[list[tuple[str, RowFacts]], bool]:
    """A batch of rows that may start, per kind, and whether a batch was full."""
    more = False
    waiting: list[tuple[str, RowFacts]] = []
    for kind, model in RUN_MODELS.items():
        batch = START_BATCH if kind in unlimited_kinds else limit
        if batch <= 0:
            continue
        # A row whose workload exists is started already (a short run can end before any pass
        # saw it running, its row still `scheduled`): it must not take a start's place.
        stmt = startable(model)
        has_workload = [run_id for k, run_id in known if k == kind]
        if has_workload:
            stmt = stmt.where(model.id.not_in(has_workload))
        found = await _facts(session, stmt.limit(batch), model)
        more = more or len(found) == batch
        waiting += [(kind, row) for row in found]
    return waiting, more


async def load_rows(
    session: AsyncSession, workloads: dict[str, WorkloadState], free: int | None
) -> tuple[dict[RunRef, RowFacts], bool]:
    """The rows this pass acts on, not every active row: the cost of a pass follows what runs
    and what may start, not the length of the queue. True when more may start than were read."""
    rows = await _started_rows(session)
    rows.update(await _rows_of_workloads(session, workloads, set(rows)))
    limit = START_BATCH if free is None else min(START_BATCH, max(free, 0))
    # Builds on the local runtime take no slot (they are only recorded): read them all.
    waiting, more = await _waiting_rows(session, set(rows), limit, frozenset({Kind.BUILD}))
    for kind, row in waiting:
        rows.setdefault((kind, row.id), row)
    return rows, more


async def replica_facts(session: AsyncSession, exp_ids: list[int]) -> dict[int, list[RowFacts]]:
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
    for exp_id, row_id, uuid, status, role, index in await session.execute(stmt):
        found.setdefault(exp_id, []).append(RowFacts(row_id, uuid, status, False, role, index))
    return found


def would_change(
    kind: str, row: RowFacts, states: dict[str, WorkloadState], replicas: list[RowFacts]
) -> bool:
    """Whether observing the run could write anything: some workload's status differs from its
    row's, or the experiment's status derived from its replicas differs from its own. A pass
    skips the (locking) observation of every run where nothing changed."""
    if kind != Kind.EXPERIMENT:
        return any(state.status != row.last_status for state in states.values())
    statuses = []
    master = None
    for job in replicas:
        state = states.get(workload_key(kind, row, job.role, job.replica_index))
        if state is not None and state.status != job.last_status:
            return True
        if job.last_status:
            statuses.append(job.last_status)
        if job.role == "master":
            master = job.last_status
    derived = experiment_status_from_jobs(statuses, master)
    return derived is not None and derived != row.last_status


async def created_ids(session: AsyncSession) -> tuple[list[RunRef], bool]:
    """Created rows (a batch, id order) and whether more remain: candidates to mark queued.
    One round trip for the three run tables."""
    parts = []
    for kind, model in RUN_MODELS.items():
        stmt = active(model, model.last_status == Status.CREATED, model.stop_requested.is_(False))
        stmt = stmt.with_only_columns(literal(kind).label("kind"), model.id.label("id"))
        parts.append(select(stmt.limit(QUEUE_BATCH + 1).subquery()))
    rows = (await session.execute(union_all(*parts))).all()
    found = sorted(((kind, run_id) for kind, run_id in rows), key=lambda r: r[1])
    return found[:QUEUE_BATCH], len(found) > QUEUE_BATCH
