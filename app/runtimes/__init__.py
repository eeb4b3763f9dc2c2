"""Runtimes: where workloads run (local processes, Kubernetes, or an in-memory fake for tests)."""

from __future__ import annotations

from typing import Any

from app.runtimes.base import (
    DONE_OBSERVED,
    CapacityError,
    Resources,
    Runtime,
    RuntimeError_,
    WorkloadSpec,
    WorkloadState,
)

RUNTIME_NAMES = ("local", "kubernetes", "fake")


def make_runtime(name: str, **kwargs: Any) -> Runtime:
    """Build the runtime called ``name`` with its constructor's keyword arguments.

    Kubernetes is imported only when asked for: the local default must not pay for (or need) the
    Kubernetes client.
    """
    if name == "local":
        from app.runtimes.local import LocalRuntime

        return LocalRuntime(**kwargs)
    if name == "kubernetes":
        from app.k8s.runtime import KubernetesRuntime

        return KubernetesRuntime(**kwargs)
    if name == "fake":
        from app.runtimes.fake import FakeRuntime

        return FakeRuntime(**kwargs)
    raise ValueError(f"Unknown runtime {name!r}; expected one of {', '.join(RUNTIME_NAMES)}.")


__all__ = [
    "DONE_OBSERVED",
    "CapacityError",
    "RUNTIME_NAMES",
    "Resources",
    "Runtime",
    "RuntimeError_",
    "WorkloadSpec",
    "WorkloadState",
    "make_runtime",
]
