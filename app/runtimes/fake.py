"""In-memory runtime for reconciler tests: records what it was asked, lets the test drive states."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from app.logic.statuses import Status
from app.runtimes.base import (
    DONE_OBSERVED,
    Capabilities,
    CapacityError,
    ObservedStatus,
    Runtime,
    RuntimeError_,
    WorkloadSpec,
    WorkloadState,
    unobservable,
)

OPERATIONS = ("observe", "start", "stop", "cleanup")


def _now() -> datetime:
    return datetime.now(UTC)


class FakeRuntime(Runtime):
    """Workloads are dict entries; nothing runs.

    ``starts[key]`` counts real creations (a start() that adopts does not count), so a test can
    prove nothing was started twice; ``start_calls`` counts every call. Stops end the workload at
    once unless ``stop_immediately=False``, when the test decides with :meth:`set_status`.
    :meth:`break_workload` makes every operation on one key fail until :meth:`heal` (a workload
    whose files or API objects are broken), as a real runtime reports it: ``observe`` and
    ``start``/``stop``/``cleanup`` raise, ``list_workloads`` lists it ``unobservable``.
    """

    name = "fake"
    capabilities = Capabilities(keeps_logs=True)

    def __init__(
        self,
        notify: Callable[[], None] | None = None,
        *,
        capacity: int | None = None,
        initial_status: ObservedStatus = Status.RUNNING,
        stop_immediately: bool = True,
    ) -> None:
        super().__init__(notify)
        self._capacity = capacity
        self.initial_status: ObservedStatus = initial_status
        self.stop_immediately = stop_immediately
        self.specs: dict[str, WorkloadSpec] = {}
        self.states: dict[str, WorkloadState] = {}
        self.logs: dict[str, str] = {}
        self.starts: Counter[str] = Counter()
        self.start_calls: Counter[str] = Counter()
        self.stop_requests: list[tuple[str, float]] = []
        self.cleaned: list[str] = []
        self.start_errors: dict[str, RuntimeError_] = {}
        self.broken: dict[tuple[str, str], BaseException] = {}  # (operation, key) -> error
        self.setup_calls = 0
        self.closed = False

    @property
    def capacity(self) -> int | None:
        return self._capacity

    async def setup(self) -> None:
        self.setup_calls += 1
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True

    # -- the interface -----------------------------------------------------------------------

    def _check(self, operation: str, key: str) -> None:
        error = self.broken.get((operation, key))
        if error is not None:
            raise error

    async def start(self, spec: WorkloadSpec) -> WorkloadState:
        self.start_calls[spec.key] += 1
        self._check("start", spec.key)
        if spec.key in self.states:
            return self.states[spec.key]
        error = self.start_errors.pop(spec.key, None)
        if error is not None:
            raise error
        if self._capacity is not None and self.running_count() >= self._capacity:
            raise CapacityError(f"Cannot start {spec.key}: all {self._capacity} slots are busy.")
        self.specs[spec.key] = spec
        self.starts[spec.key] += 1
        url = f"http://127.0.0.1:{spec.ports[0]}/" if spec.ports else None
        self.states[spec.key] = WorkloadState(
            key=spec.key, status=self.initial_status, started_at=_now(), url=url
        )
        self._notify()
        return self.states[spec.key]

    async def stop(self, key: str, *, grace_seconds: float = 10.0) -> None:
        self._check("stop", key)
        state = self.states.get(key)
        if state is None or state.done:
            return
        self.stop_requests.append((key, grace_seconds))
        if self.stop_immediately:
            self.set_status(key, Status.STOPPED, message="Stopped on request.")

    async def observe(self, key: str) -> WorkloadState | None:
        self._check("observe", key)
        return self.states.get(key)

    async def list_workloads(self) -> dict[str, WorkloadState]:
        states = dict(self.states)
        for (operation, key), error in self.broken.items():
            if operation == "observe" and key in states:
                states[key] = unobservable(key, error)
        return states

    async def cleanup(self, key: str) -> None:
        self._check("cleanup", key)
        state = self.states.get(key)
        if state is None or not state.done:
            return
        del self.states[key]
        self.cleaned.append(key)

    async def read_logs(self, key: str) -> str | None:
        return self.logs.get(key)

    # -- driving it from a test --------------------------------------------------------------

    def set_status(
        self,
        key: str,
        status: ObservedStatus,
        *,
        exit_code: int | None = None,
        message: str | None = None,
        url: str | None = None,
    ) -> WorkloadState:
        """Move a started workload to ``status`` and wake the reconciler."""
        if key not in self.states:
            raise KeyError(f"FakeRuntime has no workload {key!r}")
        state = self.states[key]
        done = status in DONE_OBSERVED
        if message is None and done and exit_code is not None:
            message = f"Process exited with code {exit_code}."
        self.states[key] = replace(
            state,
            status=status,
            exit_code=exit_code,
            message=message,
            finished_at=_now() if done else None,
            url=url if url is not None else state.url,
        )
        self._notify()
        return self.states[key]

    def vanish(self, key: str) -> None:
        """Lose a workload without a trace, as a deleted pod or a wiped machine would."""
        self.states.pop(key, None)
        self._notify()

    def fail_next_start(self, key: str, error: RuntimeError_ | None = None) -> None:
        """Make the next start() of ``key`` raise (retryable unless ``error`` says otherwise)."""
        self.start_errors[key] = error or RuntimeError_(f"Injected failure starting {key}.")

    def break_workload(
        self,
        key: str,
        error: BaseException | None = None,
        *,
        operations: tuple[str, ...] = OPERATIONS,
    ) -> None:
        """Make these operations on ``key`` raise ``error`` (an OSError by default) until healed."""
        for operation in operations:
            self.broken[(operation, key)] = error or OSError(f"Injected failure of {key}.")

    def heal(self, key: str) -> None:
        for operation in OPERATIONS:
            self.broken.pop((operation, key), None)

    def running_count(self) -> int:
        return sum(1 for state in self.states.values() if not state.done)
