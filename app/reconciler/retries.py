"""Per-key failures of the reconciler: backoff, then a word in the row's status message, then
giving up on the row.

A failure while observing, starting or stopping one workload (or driving one group) is that
key's problem alone: it is logged with the key, retried after a growing delay while every other
key goes on, told in its row's status message once it has failed SURFACE_AFTER times, and when it
keeps failing for `PLX_WORKLOAD_RETRY_TIMEOUT` seconds the row fails with a message naming it.
A transient failure (a retryable RuntimeError_: the API is down, the runtime cannot spawn right
now) is retried and told but never given up on: it says nothing about the workload itself.

In memory, per reconciler: a restarted replica starts afresh, which only delays a give-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.logic.statuses import Status, is_done
from app.runtimes.base import RuntimeError_, describe_error
from app.services.statuses import set_status

log = logging.getLogger(__name__)

BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
SURFACE_AFTER = 3  # failures in a row before the row's status message tells it
# A key that has not failed for this long is forgotten (it recovered, or its row is gone).
FORGET_AFTER = 3 * BACKOFF_MAX


@dataclass
class Failure:
    key: str  # the workload, run or group that fails
    what: str  # what was being done: "observe", "start", "stop", "reconcile"
    error: str
    count: int
    first_at: float
    last_at: float
    next_at: float
    transient: bool = False
    surfaced: bool = False
    subject: str = ""  # what the messages name: the workload, when the key is its run

    def __post_init__(self) -> None:
        self.subject = self.subject or self.key

    def trouble_message(self, give_up_after: float) -> str:
        after = "" if self.transient else f"; the run fails if this lasts {give_up_after:.0f} s"
        return (
            f"plx cannot {self.what} {self.subject} ({self.count} attempts, retrying{after}): "
            f"{self.error}"
        )

    def give_up_message(self) -> str:
        elapsed = self.last_at - self.first_at
        return (
            f"plx gave up: it could not {self.what} {self.subject} for {elapsed:.0f} s "
            f"({self.count} attempts): {self.error}"
        )


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError_) and exc.retryable


class Retries:
    """The failing keys of one reconciler and when each may be tried again."""

    def __init__(
        self, give_up_after: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.give_up_after = give_up_after
        self.clock = clock
        self._failures: dict[str, Failure] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._failures

    def get(self, key: str) -> Failure | None:
        return self._failures.get(key)

    def due(self, key: str) -> bool:
        """Whether `key` may be tried now (it has not failed, or its delay has passed)."""
        failure = self._failures.get(key)
        return failure is None or self.clock() >= failure.next_at

    def failed(
        self,
        key: str,
        what: str,
        error: BaseException | str,
        *,
        subject: str | None = None,
        transient: bool | None = None,
    ) -> Failure:
        """Record one more failure of `key` (logged with `subject`, the workload, when the key
        is its run) and push its next attempt back."""
        now = self.clock()
        self._prune(now)
        text = error if isinstance(error, str) else describe_error(error)
        if transient is None:
            transient = not isinstance(error, str) and is_transient(error)
        failure = self._failures.get(key)
        if failure is None:
            failure = Failure(key, what, text, 0, now, now, now)
            self._failures[key] = failure
        failure.what, failure.error, failure.transient = what, text, transient
        failure.subject = subject or key
        failure.count += 1
        failure.last_at = now
        delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (failure.count - 1))
        failure.next_at = now + delay
        # The traceback once, on the first failure of an unexpected kind; then one line.
        trace = failure.count == 1 and not isinstance(error, str) and not transient
        log.warning(
            "%s of %s failed (%d in a row, next attempt in %.0f s): %s",
            what,
            subject or key,
            failure.count,
            delay,
            text,
            exc_info=error if trace and not isinstance(error, str) else None,
        )
        return failure

    def succeeded(self, key: str, *whats: str) -> None:
        """`key` worked: forget its failures (only those at doing one of `whats`, when given)."""
        failure = self._failures.get(key)
        if failure is not None and (not whats or failure.what in whats):
            del self._failures[key]
            log.info("%s of %s works again after %d failures", failure.what, key, failure.count)

    def to_surface(self, failure: Failure) -> bool:
        """True once, when the failure has lasted long enough to be told on its row."""
        if failure.surfaced or failure.count < SURFACE_AFTER:
            return False
        failure.surfaced = True
        return True

    def exhausted(self, failure: Failure) -> bool:
        """Time to give up on the row: not transient, and failing for `give_up_after` s."""
        return (
            not failure.transient
            and failure.count >= SURFACE_AFTER
            and failure.last_at - failure.first_at >= self.give_up_after
        )

    def _prune(self, now: float) -> None:
        stale = [k for k, f in self._failures.items() if now - f.last_at > FORGET_AFTER]
        for key in stale:
            del self._failures[key]


async def tracked(
    rec: Any,
    key: str,
    what: str,
    action: Awaitable[Any],
    *,
    on_failure: Callable[[Failure], Awaitable[None]] | None = None,
) -> Any:
    """Await one keyed action: a failure is recorded for `key` (and handed to `on_failure`,
    e.g. to tell it on its row), a success clears the key. Never raises but for a cancel."""
    try:
        result = await action
    except Exception as exc:
        failure = rec.retries.failed(key, what, exc)
        if on_failure is not None:
            await on_failure(failure)
        return None
    rec.retries.succeeded(key)
    return result


Loader = Callable[[Any], Awaitable[Any]]
GiveUp = Callable[[Any, Any, str], Awaitable[None]]


async def report(rec: Any, failure: Failure, load: Loader, give_up: GiveUp | None = None) -> None:
    """Tell a failing key's trouble on its row (`load(session)`, locked, or None): once in its
    status message, and when the failure is exhausted fail the row (`give_up(session, row,
    message)`, by default a `failed` status). Never raises: the report is beside the point."""
    retries: Retries = rec.retries
    exhausted = retries.exhausted(failure)
    if not (exhausted or retries.to_surface(failure)):
        return
    try:
        async with rec.session() as session:
            row = await load(session)
            if row is None or is_done(row.last_status):
                return
            if exhausted:
                message = failure.give_up_message()
                if give_up is not None:
                    await give_up(session, row, message)
                else:
                    await set_status(session, row, Status.FAILED, message=message)
                log.error("%s: %s", failure.key, message)
                return
            # The same status again (force: no transition), with the trouble as its message.
            message = failure.trouble_message(retries.give_up_after)
            await set_status(session, row, row.last_status, message=message, force=True)
    except Exception:
        log.exception("cannot tell the failures of %s on its row", failure.key)
