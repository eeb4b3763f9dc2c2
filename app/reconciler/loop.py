"""The reconciler loop: wake on local changes or every resync interval, run each step in order.

Steps are `async def step(reconciler) -> None`. Each opens its own short transactions through
`reconciler.session()` and must be idempotent: the process may die between any two of them and
the next pass converges. A step that raises is logged and the loop goes on with the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import session_scope
from app.reconciler.retries import Retries
from app.runtimes import build_runtime
from app.runtimes.base import Runtime, cancel_and_wait

log = logging.getLogger(__name__)

SETUP_RETRY_MIN, SETUP_RETRY_MAX = 0.5, 30.0

Step = Callable[["Reconciler"], Awaitable[None]]


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        runtime: Runtime,
        *,
        steps: list[Step] | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.runtime = runtime
        self.steps: list[Step] = list(steps or [])
        self.passes = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.setup_done = False
        # Failing workloads, runs and groups: backed off, told, given up on (retries.py).
        self.retries = Retries(settings.workload_retry_timeout)
        runtime.set_notify(self.wake)

    def register_step(self, step: Step, *, first: bool = False) -> None:
        if step in self.steps:
            return
        if first:
            self.steps.insert(0, step)
        else:
            self.steps.append(step)

    def session(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        """One short unit of work: committed when the block ends, rolled back on error."""
        return session_scope(self.sessionmaker)

    def wake(self) -> None:
        self._wake.set()

    async def reconcile_once(self) -> None:
        """One pass over every step. Safe to call from tests without `start()`."""
        # Serialised: a test calling this while the loop runs must not interleave two passes.
        async with self._lock:
            for step in list(self.steps):
                try:
                    await step(self)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("reconciler step %s failed", getattr(step, "__name__", step))
            self.passes += 1
            self.last_pass_at = time.time()  # /metrics: reconcile lag

    async def _setup(self) -> bool:
        try:
            await self.runtime.setup()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            kind = type(self.runtime).__name__
            log.warning("runtime %s: setup failed (%s); retrying", kind, exc)
            return False
        self.setup_done = True
        return True

    async def _setup_with_backoff(self) -> None:
        """Until the runtime answers (e.g. the Kubernetes API is down): no step runs, so no
        run starts or is judged vanished, and the API keeps serving."""
        delay = SETUP_RETRY_MIN
        while not self.setup_done and not await self._setup():
            await asyncio.sleep(delay)
            delay = min(delay * 2, SETUP_RETRY_MAX)

    async def _run(self) -> None:
        await self._setup_with_backoff()
        while True:
            # Clear before the pass: a wake-up that arrives during it triggers another one.
            self._wake.clear()
            await self.reconcile_once()
            # asyncio.timeout, not wait_for: on 3.11, a cancel that lands as the wake-up
            # completes is swallowed by wait_for, and stop() then waits forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.reconcile_interval):
                    await self._wake.wait()

    async def start(self) -> None:
        # One attempt in line, so a healthy runtime has adopted its workloads when the app
        # starts serving; a failed one is retried by the loop with backoff.
        await self._setup()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="plx-reconciler")

    async def stop(self) -> None:
        """Stop the loop and release the runtime; workloads keep running and are adopted later."""
        await cancel_and_wait(self._task)
        self._task = None
        await self.runtime.aclose()


async def start_reconciler(app: Any) -> Callable[[], Awaitable[None]]:
    """Startup hook: build the runtime (the one `PLX_RUNTIME` names, registered with
    `app.runtimes`) and the reconciler with the steps of `create_app`.

    `app.state.reconciler_steps` is the ordered list of steps (runs, groups, plugins), filled in
    `create_app` so that each module adds its own.
    """
    settings: Settings = app.state.settings
    runtime = getattr(app.state, "runtime", None) or build_runtime(settings)
    reconciler = Reconciler(settings, app.state.sessionmaker, runtime)
    for step in getattr(app.state, "reconciler_steps", []):
        reconciler.register_step(step)
    app.state.runtime = runtime
    app.state.reconciler = reconciler
    await reconciler.start()

    async def stop() -> None:
        await reconciler.stop()
        app.state.reconciler = None

    return stop
