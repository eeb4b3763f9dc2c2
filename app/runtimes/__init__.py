"""Runtimes: where workloads run (local processes, Kubernetes, or an in-memory fake for tests).

A runtime is known by the name `PLX_RUNTIME` gives it. The local and fake runtimes are built in;
others (Kubernetes) are registered by the composition root (app/composition.py), so that this
package never imports them and the local default neither pays for nor needs their clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.runtimes.base import (
    DONE_OBSERVED,
    Capabilities,
    CapacityError,
    Resources,
    Runtime,
    RuntimeError_,
    WorkloadSpec,
    WorkloadState,
)

# How often the local runtime looks at its live workloads (a few file reads each, at most
# PLX_LOCAL_MAX_PARALLEL of them). An end waits half of it on average before the next run of
# its slot starts, so 0.5 s cost ~250 ms per short run; 50 ms costs ~25 ms.
LOCAL_POLL_INTERVAL = 0.05


@dataclass(frozen=True)
class RuntimeFactory:
    """How to build one runtime: from keyword arguments, or from the server's settings."""

    make: Callable[..., Runtime]
    from_settings: Callable[[Settings], Runtime]


def _make_local(**kwargs: Any) -> Runtime:
    from app.runtimes.local import LocalRuntime

    return LocalRuntime(**kwargs)


def _local_from_settings(settings: Settings) -> Runtime:
    from app.runtimes.isolation import local_run_user

    return _make_local(
        state_dir=settings.data_dir / "runtime",
        max_parallel=settings.local_max_parallel,
        poll_interval=LOCAL_POLL_INTERVAL,
        run_user=local_run_user(settings),
    )


def _make_fake(**kwargs: Any) -> Runtime:
    from app.runtimes.fake import FakeRuntime

    return FakeRuntime(**kwargs)


_FACTORIES: dict[str, RuntimeFactory] = {
    "local": RuntimeFactory(_make_local, _local_from_settings),
    "fake": RuntimeFactory(_make_fake, lambda _settings: _make_fake()),
}


def register_runtime(name: str, factory: RuntimeFactory) -> None:
    """Make the runtime `name` buildable (the composition root registers Kubernetes)."""
    _FACTORIES[name] = factory


def _factory(name: str) -> RuntimeFactory:
    try:
        return _FACTORIES[name]
    except KeyError:
        known = ", ".join(sorted(_FACTORIES))
        raise ValueError(f"Unknown runtime {name!r}; expected one of {known}.") from None


def make_runtime(name: str, **kwargs: Any) -> Runtime:
    """Build the runtime called ``name`` with its constructor's keyword arguments."""
    return _factory(name).make(**kwargs)


def build_runtime(settings: Settings) -> Runtime:
    """The runtime `PLX_RUNTIME` names, configured from the settings."""
    return _factory(settings.runtime).from_settings(settings)


__all__ = [
    "DONE_OBSERVED",
    "Capabilities",
    "CapacityError",
    "Resources",
    "Runtime",
    "RuntimeError_",
    "RuntimeFactory",
    "WorkloadSpec",
    "WorkloadState",
    "build_runtime",
    "make_runtime",
    "register_runtime",
]
