"""The reconciler loop: wake on local changes or every resync interval, run each step in order.

Steps are `async def step(reconciler) -> None`. Each opens its own short transactions through
`reconciler.session()` and must be idempotent: the process may die between any two of them and
the next pass converges. A step that raises is logged and the loop goes on with the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import session_scope
from app.runtimes.base import Runtime

log = logging.getLogger(__name__)

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

    async def _run(self) -> None:
        while True:
            # Clear before the pass: a wake-up that arrives during it triggers another one.
            self._wake.clear()
            await self.reconcile_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.reconcile_interval)

    async def start(self) -> None:
        await self.runtime.setup()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="plx-reconciler")

    async def stop(self) -> None:
        """Stop the loop and release the runtime; workloads keep running and are adopted later."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.runtime.aclose()


def build_runtime(settings: Settings) -> Runtime:
    from app.runtimes import make_runtime

    if settings.runtime == "local":
        return make_runtime(
            "local",
            state_dir=settings.data_dir / "runtime",
            max_parallel=settings.local_max_parallel,
        )
    if settings.runtime == "kubernetes":
        return make_runtime("kubernetes", namespace=settings.k8s_namespace)
    return make_runtime(settings.runtime)


async def start_reconciler(app: Any) -> Callable[[], Awaitable[None]]:
    """Startup hook: build the runtime and the reconciler with the steps of `create_app`.

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
