"""How the run step carries out its actions: side by side, in chunks, each run's failure its own.

Each action is its own unit of work on its own rows: a pass runs them together (it costs about
its slowest action, not their sum), at most `width` at a time. Starts and observations go in
chunks, one transaction each; a chunk that fails is retried one run at a time, so one row that
breaks it does not hold back the others. A run's failure is counted under its `run_key` and told
on its row (app/reconciler/retries.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from app.kinds import Kind
from app.logic.statuses import Status
from app.reconciler.locking import RunRef, lock_run, locked_replicas
from app.reconciler.retries import Failure, report, tracked
from app.services.statuses import set_status

log = logging.getLogger(__name__)

# Starts and observations are done in chunks of up to this many runs, one transaction each:
# their rows locked, leases claimed, tokens and statuses written in a few statements per chunk.
CHUNK = 50

Item = TypeVar("Item", bound=tuple[Any, ...])
Action = tuple[str, Coroutine[Any, Any, Any]]  # (label for the log, the action)


def run_key(kind: str, run_id: int) -> str:
    """The key a run's failures are counted under (its workloads' keys start with it)."""
    return f"{kind}-{run_id}"


async def tell_failure(rec: Any, kind: str, run_id: int, failure: Failure) -> None:
    """Tell a run's failure on its row; when given up on, the run (and its replicas) fail."""

    async def load(session: Any) -> Any:
        return await lock_run(session, kind, run_id)

    async def give_up(session: Any, row: Any, message: str) -> None:
        if kind == Kind.EXPERIMENT:
            for job in await locked_replicas(session, row):
                await set_status(session, job, Status.FAILED, message=message)
        await set_status(session, row, Status.FAILED, message=message)

    await report(rec, failure, load, give_up)


async def trouble(
    rec: Any, kind: str, run_id: int, what: str, exc: BaseException, *, subject: str | None = None
) -> None:
    """Count the failure of `what` for the run, and tell it on its row."""
    failure = rec.retries.failed(run_key(kind, run_id), what, exc, subject=subject)
    await tell_failure(rec, kind, run_id, failure)


async def tracked_action(
    rec: Any, key: str, what: str, action: Awaitable[Any], *, run: RunRef | None = None
) -> Any:
    """`tracked`, the failure told on the run's row when `run` is given."""

    async def tell(failure: Failure) -> None:
        if run is not None:
            await tell_failure(rec, run[0], run[1], failure)

    return await tracked(rec, key, what, action, on_failure=tell)


def chunks(items: list[Item], width: int) -> list[list[Item]]:
    """`items` cut into about `width` chunks of at most CHUNK, so the pass's concurrency is used."""
    size = min(CHUNK, max(1, -(-len(items) // width)))
    return [items[i : i + size] for i in range(0, len(items), size)]


async def run_all(actions: list[Action], width: int) -> list[Any]:
    """Every action, at most `width` at a time; a failed one is logged and gives None."""
    gate = asyncio.Semaphore(width)

    async def one(label: str, action: Coroutine[Any, Any, Any]) -> Any:
        async with gate:
            try:
                return await action
            except Exception:
                log.exception("reconciling (%s) failed", label)
                return None

    return await asyncio.gather(*(one(*action) for action in actions))


async def each_alone(
    rec: Any,
    step: Callable[[list[Item]], Awaitable[list[Any]]],
    items: list[Item],
    what: str,
    *,
    clears: bool = False,
) -> list[Any]:
    """`step(items)` in one transaction; if that fails, `step([item])` for each item. The
    failure of one alone is that run's (retried with backoff, told, given up on); `clears`:
    the success of the step is the success of `what` for its runs. Items start (kind, run id)."""
    try:
        done = await step(items)
    except Exception as exc:
        if len(items) == 1:
            await trouble(rec, items[0][0], items[0][1], what, exc)
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
            await trouble(rec, item[0], item[1], what, exc)
        else:
            if clears:
                rec.retries.succeeded(run_key(item[0], item[1]), what)
    return done
