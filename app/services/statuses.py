"""The one compare-and-set status writer used by the API and the reconciler alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, event, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.dialects import writes_in_ctes
from app.kinds import BY_MODEL, kind_of
from app.logic.statuses import Status, can_transition, clock_update, is_done, rules_for
from app.models.base import new_uuid, utcnow

MESSAGE_MAX = 256
_LOCKED = "locked_rows"
_PENDING = "pending_status_rows"

# The session classes whose events run this module's hooks (register_session_events): only
# their sessions may keep history rows pending until commit, or remember locks.
_HOOKED: tuple[type[Session], ...] = ()


def status_values(model: type) -> frozenset[Status]:
    """The status values an entity of `model` may take."""
    return rules_for(BY_MODEL[model].status_table).values


async def lock_row(session: AsyncSession, obj: Any) -> Any:
    """Re-read `obj` under a row lock so the status check sees the latest committed value.

    Postgres: SELECT ... FOR NO KEY UPDATE, the lock an UPDATE of non-key columns takes anyway.
    Not FOR UPDATE: that one also blocks the FOR KEY SHARE of foreign-key checks, so a writer
    inserting or updating a row that points at this one (an experiment of a locked group: Postgres
    re-checks the keys of a row version its own transaction wrote) would wait for us while we wait
    for its row: the group-stop deadlock of issue #6.

    Lock order, everywhere: a group, then its experiments by ascending id, then an experiment's
    jobs (only while holding the experiment). SQLite renders no FOR UPDATE, but every transaction
    begins IMMEDIATE (app/db.py), so the writer already holds the database's only write lock.
    """
    model = type(obj)
    if (model, obj.id) in session.info.get(_LOCKED, ()):
        # Read under the lock earlier in this transaction: nobody else can have changed it, so
        # the session's copy (pending changes included) is current and a second
        # SELECT ... FOR UPDATE would only cost.
        held = await session.get(model, obj.id)
        if held is not None:
            return held
    # The re-read below overwrites the object's attributes: write pending changes first.
    await session.flush()
    stmt = (
        select(model)
        .where(model.id == obj.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    row = await session.scalar(stmt)
    if row is not None:
        mark_locked(session, row)
    return row


def mark_locked(session: AsyncSession, row: Any) -> None:
    """Record that this transaction read `row` under its row lock (lock_row then skips the
    re-read). The record ends with the transaction, or any savepoint, commit or rollback; a
    session whose class has not the hooks that end it records nothing (lock_row re-reads)."""
    if _is_hooked(session):
        session.info.setdefault(_LOCKED, set()).add((type(row), row.id))


def register_session_events(session_class: type[Session]) -> None:
    """Hook the writer into the sessions of `session_class`: the app's (app/db.py `AppSession`),
    not SQLAlchemy's global `Session`, so another sessionmaker of the process runs none of it.
    Pending history rows are written at commit, in the order they were set; remembered locks and
    pending rows are dropped when the transaction ends or a (savepoint) rollback releases them."""
    global _HOOKED
    if issubclass(session_class, _HOOKED):
        return
    event.listen(session_class, "after_transaction_end", _forget_locks_at_end)
    event.listen(session_class, "after_soft_rollback", _forget_locks_on_rollback)
    event.listen(session_class, "before_commit", _write_pending_at_commit)
    _HOOKED = (*_HOOKED, session_class)


def _is_hooked(session: AsyncSession) -> bool:
    return isinstance(session.sync_session, _HOOKED)


def _forget_locks_at_end(session: Session, transaction: Any) -> None:
    # Not for the inner "subtransaction" every flush opens, nor a released savepoint: only the
    # end of the real transaction releases the locks.
    if transaction.parent is None:
        session.info.pop(_LOCKED, None)
        session.info.pop(_PENDING, None)  # written at commit; dropped by a rollback or close


def _forget_locks_on_rollback(session: Session, _previous: Any) -> None:
    # Any rollback, a savepoint's included (it releases the row locks taken after it).
    session.info.pop(_LOCKED, None)
    session.info.pop(_PENDING, None)


def _write_pending_at_commit(session: Session) -> None:
    # Runs inside the commit's greenlet on an AsyncSession too, so it may execute statements.
    _write_pending(session)


def _write_pending(session: Session) -> None:
    """The history rows `set_status(flush=False)` left pending: one multi-row INSERT per table
    (Core, no RETURNING: the ORM would insert them one by one on SQLite, and wherever their
    NULL columns differ)."""
    pending: dict[tuple[type[Any], tuple[str, ...]], list[dict[str, Any]]] | None
    pending = session.info.pop(_PENDING, None)
    for (model, _columns), rows in (pending or {}).items():
        # The table, not the class: an ORM bulk INSERT would go row by row here.
        session.execute(insert(model.__table__), rows)


async def _write_pending_now(session: AsyncSession) -> None:
    if session.info.get(_PENDING):
        await session.run_sync(_write_pending)


def add_first_status(session: AsyncSession, obj: Any) -> None:
    """The history row of a row this transaction just inserted with its first `last_status`
    already set: no lock and no UPDATE (nobody else can see the row yet), unlike set_status."""
    kind = kind_of(obj)
    if obj.id is None or obj.last_status not in rules_for(kind.status_table).values:
        raise ValueError(f"{type(obj).__name__} must be flushed with a valid first status")
    created_at = obj.updated_at or utcnow()
    session.add(
        kind.status_model(
            **{kind.status_fk: obj.id, "status": obj.last_status}, created_at=created_at
        )
    )
    mark_locked(session, obj)  # the inserting transaction holds the row


def _insert_values(obj: Any) -> dict[str, Any]:
    """The column values the ORM would INSERT for a transient `obj`: what was set on it, and
    the Python-side defaults of the other columns (the primary key is left to the database)."""
    state = inspect(obj)
    values: dict[str, Any] = {}
    for column in obj.__table__.columns:
        key = state.mapper.get_property_by_column(column).key
        if key in state.dict:
            values[column.key] = state.dict[key]
        elif column.default is not None and not column.primary_key:
            default = column.default
            values[column.key] = default.arg(None) if default.is_callable else default.arg
    return values


@cache
def _insert_with_history(model: Any, keys: tuple[str, ...]) -> Any:
    """INSERT ... RETURNING of `model` with bound `keys`, whose first status is copied into
    its history table by a data-modifying CTE; built once per shape (building it costs more
    than running it)."""
    kind = BY_MODEL[model]
    table = model.__table__
    row = insert(table).values({k: bindparam(k) for k in keys}).returning(*table.c).cte("new_row")
    history = kind.status_model.__table__
    first = select(
        row.c.id,
        row.c.last_status,
        row.c.updated_at,
        bindparam("first_status_uuid", type_=history.c.uuid.type),
    )
    written = insert(history).from_select([kind.status_fk, "status", "created_at", "uuid"], first)
    return select(model).from_statement(select(row).add_cte(written.cte("first_status")))


async def insert_with_first_status(session: AsyncSession, obj: Any) -> Any:
    """INSERT a new row whose first `last_status` is set, with the history row of that status
    (what `session.add` + flush + `add_first_status` do), and return the persistent row.

    On Postgres that is one statement: the history row is written by a data-modifying CTE of
    the row's INSERT, and the row comes back as an ORM object. Elsewhere, the ORM's flush.
    A row with a unique name is inserted inside `unique_names.unique_name`."""
    kind = kind_of(obj)
    if not writes_in_ctes(session):
        session.add(obj)
        await session.flush()
        add_first_status(session, obj)
        return obj
    model: Any = type(obj)
    values = _insert_values(obj)
    if values.get("last_status") not in rules_for(kind.status_table).values:
        raise ValueError(f"{model.__name__} must be inserted with a valid first status")
    stmt = _insert_with_history(model, tuple(sorted(values)))
    values["first_status_uuid"] = new_uuid()
    new = (await session.scalars(stmt, values)).one()
    mark_locked(session, new)  # the inserting transaction holds the row
    return new


async def set_status(
    session: AsyncSession,
    obj: Any,
    status: Status,
    *,
    message: str | None = None,
    traceback: str | None = None,
    details: dict[str, Any] | None = None,
    force: bool = False,
    flush: bool = True,
) -> bool:
    """Append a status row and update `last_status` and the clock, if the rules allow it.

    Returns False, writing nothing, when the transition is refused (another writer won, or the
    status is not a value of this entity). `force` skips the transition table (v0 let a client
    post any status) but a done entity still never changes. `flush=False` leaves the writes
    pending until the next flush or commit, so a caller changing many rows it holds locked sends
    them together (UPDATEs batched, history rows in one multi-row INSERT per table; inside a
    savepoint, or in a session the commit hook does not watch, the writes are made at once, as a
    rollback to a savepoint must drop only its own).
    """
    kind = kind_of(obj)
    rules = rules_for(kind.status_table)
    if status not in rules.values:
        return False
    row = await lock_row(session, obj)
    if row is None:
        return False
    current = row.last_status
    if force:
        if is_done(current):
            return False
    elif not can_transition(kind.status_table, current, status):
        return False
    now = utcnow()
    values: dict[str, Any] = {
        kind.status_fk: row.id,
        "status": status,
        "message": message[:MESSAGE_MAX] if message else message,
        "traceback": traceback,
        "created_at": now,
    }
    if details is not None and hasattr(kind.status_model, "details"):
        values["details"] = details
    if flush or session.in_nested_transaction() or not _is_hooked(session):
        # Pending rows first, so history rows keep the order they were set in.
        await _write_pending_now(session)
        session.add(kind.status_model(**values))
    else:
        values["uuid"] = new_uuid()
        # Grouped by the columns given (an executemany needs the same ones in every row).
        group = (kind.status_model, tuple(values))
        session.info.setdefault(_PENDING, {}).setdefault(group, []).append(values)
    clock = clock_update(
        kind.status_table,
        status,
        has_started_at=row.started_at is not None,
        has_finished_at=row.finished_at is not None,
    )
    if clock.set_started_at:
        row.started_at = now
    if clock.set_finished_at:
        row.finished_at = now
        if clock.started_at_from_created_at:
            row.started_at = row.created_at
    row.last_status = status
    row.updated_at = now
    if flush:
        await session.flush()
    return True


async def write_history(
    session: AsyncSession,
    model: type,
    ids: Sequence[int],
    status: Status,
    *,
    at: datetime,
    message: str | None = None,
) -> None:
    """The history rows of a bulk status write: one per id, in one multi-row INSERT. For the
    callers that set `last_status` of many rows in the statement that locked them (a group's
    stop, a sweep's new experiments), where per-row `set_status` would cost a round trip each."""
    if not ids:
        return
    kind = BY_MODEL[model]
    if status not in rules_for(kind.status_table).values:
        raise ValueError(f"{status!r} is not a status of {model.__name__}")
    await session.execute(
        insert(kind.status_model),
        [
            {
                kind.status_fk: i,
                "uuid": new_uuid(),
                "created_at": at,
                "status": status,
                "message": message[:MESSAGE_MAX] if message else message,
            }
            for i in ids
        ],
    )
