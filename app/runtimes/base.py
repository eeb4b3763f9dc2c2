"""The runtime interface: how the reconciler turns rows into workloads and back into statuses.

A *workload* is one process (local) or one Pod / Deployment (Kubernetes) for one replica of a run.
It is identified by a deterministic ``key`` derived from the run, so that starting the same
workload twice adopts the existing one instead of creating a duplicate (the reconciler may crash
between any two steps and retry).

Runtimes never touch the database. The reconciler owns the rows; it calls ``start``/``stop`` and
reads ``observe``/``list_workloads`` (level-triggered: the full picture, not single events).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import platform
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from app.logic.statuses import DONE, Status

WorkloadKind = Literal["experiment", "job", "build", "tensorboard", "notebook"]

# Observed statuses use the job-level values of polyaxon-v0.md 3.2 (plus ``warning``).
# ``scheduled``: accepted, not yet running (pod pending, process queued);
# ``building``: image pull / container creating; ``warning``: e.g. unschedulable, still alive.
ObservedStatus = Literal[
    Status.SCHEDULED,
    Status.BUILDING,
    Status.RUNNING,
    Status.WARNING,
    Status.SUCCEEDED,
    Status.FAILED,
    Status.STOPPED,
    Status.UNKNOWN,
]
DONE_OBSERVED: frozenset[str] = DONE

# A notebook stopped with `commit` uploads its workspace before it ends (a preStop hook in a pod):
# the upload may take NOTEBOOK_SNAPSHOT_TIMEOUT seconds, and the workload's grace period is that
# plus NOTEBOOK_GRACE_MARGIN. Its run token must outlive both (app/services/run_tokens.py).
NOTEBOOK_SNAPSHOT_TIMEOUT = 45
NOTEBOOK_GRACE_MARGIN = 15


@dataclass(frozen=True)
class Capabilities:
    """What a runtime does, declared by it: the reconciler asks these, never the runtime's name."""

    # Workloads are processes of this machine: a run gets a writable copy of its code version,
    # a plugin listens on loopback at a free port and its program is found on this PATH.
    local_processes: bool = False
    # False: a build is recorded as succeeded without a workload (no image is built).
    builds_images: bool = True
    # Workloads are containers of a cluster: builds push to the registry and runs use their
    # build's image, replicas reach each other by pod name, notebooks fetch their code through
    # the API.
    in_cluster: bool = False
    # `read_logs` answers what the workload printed; else it is in the spec's `log_path`.
    keeps_logs: bool = False
    # Seconds a notebook stopped gracefully needs before its cleanup (its preStop upload);
    # None: stopped like any workload.
    notebook_drain_seconds: int | None = None


@dataclass(frozen=True)
class Resources:
    """Requests/limits as written in the polyaxonfile (`environment.resources`)."""

    cpu_requests: float | None = None
    cpu_limits: float | None = None
    memory_requests: int | None = None  # MiB
    memory_limits: int | None = None  # MiB
    gpu_requests: int | None = None
    gpu_limits: int | None = None


@dataclass(frozen=True)
class WorkloadSpec:
    """Everything a runtime needs to create one workload. Built by the reconciler from rows."""

    key: str  # deterministic, unique per workload, e.g. "experiment-17-master-0"
    kind: WorkloadKind
    run_id: int  # id of the experiment / job / build / tensorboard / notebook row
    uuid: str  # 32 hex chars of the run
    unique_name: str  # e.g. "root.quick-start.2.17"
    username: str
    project: str  # project name
    role: str = "master"  # master | worker | ps (experiments), "main" for others
    replica_index: int = 0
    command: str | None = None  # rendered command, run as /bin/bash -c "<command>"
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None  # local: checkout of the code version to run in
    code_reference: str | None = None  # code version id (k8s init container fetches it)
    outputs_path: str = ""
    # Outputs of other runs this one reads (a tensorboard's logdirs): mounted read-only.
    read_only_paths: tuple[str, ...] = ()
    log_path: str = ""  # local: where stdout+stderr go
    resources: Resources | None = None
    node_selector: dict[str, str] | None = None
    affinity: dict[str, Any] | None = None
    tolerations: list[dict[str, Any]] | None = None
    secret_refs: list[str] | None = None
    configmap_refs: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    ports: list[int] = field(default_factory=list)  # services to expose (tensorboard 6006 ...)
    group_id: int | None = None
    # Build workloads: dockerfile text and destination image (k8s kaniko).
    dockerfile: str | None = None
    destination_image: str | None = None
    # Or a Dockerfile inside the code version (`build.dockerfile`), and the directory of the
    # code version used as the build context (`build.context`), both relative to its root.
    dockerfile_path: str | None = None
    build_context: str | None = None


@dataclass(frozen=True)
class WorkloadState:
    """What a runtime observes of one workload, at one moment."""

    key: str
    status: ObservedStatus
    message: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)  # pid, node, pod name, ...
    url: str | None = None  # where a tensorboard / notebook is served
    # Set when the runtime could not observe this workload now (the others were): its status is
    # then `unknown` and says nothing; the reconciler retries it with backoff.
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status in DONE_OBSERVED


def describe_error(exc: BaseException) -> str:
    """One line naming what went wrong, for logs and status messages."""
    if isinstance(exc, RuntimeError_):
        return exc.message
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unobservable(key: str, exc: BaseException) -> WorkloadState:
    """The state of a workload whose observation failed: listed, with the error, so that one
    workload in trouble neither hides the others nor passes for vanished."""
    return WorkloadState(key=key, status=Status.UNKNOWN, error=describe_error(exc))


@dataclass(frozen=True)
class ClusterNode:
    """One machine that runs workloads, with the facts of a v0 ClusterNode."""

    name: str
    hostname: str
    role: Literal["master", "agent"] = "agent"
    status: Literal["ready", "not_ready", "unknown"] = "unknown"
    cpu: float | None = None  # cores
    memory: int | None = None  # bytes
    n_gpus: int = 0
    kubelet_version: str | None = None
    docker_version: str | None = None  # the container runtime, e.g. "containerd://1.7.2"
    os_image: str | None = None
    kernel_version: str | None = None
    schedulable_taints: bool = False  # the node has NoSchedule / NoExecute taints
    schedulable_state: bool = True  # not cordoned
    created_at: str | None = None  # ordering only (stable sequence numbers)


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _os_image() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def this_machine() -> ClusterNode:
    """The machine this process runs on: where the local runtime starts every workload."""
    hostname = socket.gethostname()
    return ClusterNode(
        name=hostname,
        hostname=hostname,
        role="master",
        status="ready",
        cpu=float(os.cpu_count() or 1),
        memory=_memory_bytes(),
        os_image=_os_image(),
        kernel_version=platform.release(),
    )


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class RuntimeError_(Exception):
    """A runtime could not perform an action; ``retryable`` tells the reconciler to back off."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class CapacityError(RuntimeError_):
    """No free slot to start a workload now: the normal wait of a full runtime, not a fault."""


class Runtime(abc.ABC):
    """Start, stop and observe workloads. Every method is idempotent."""

    name: str = "abstract"  # for logs and metrics; behaviour follows `capabilities`
    capabilities: Capabilities = Capabilities()

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        # Called (from the event loop) whenever a workload may have changed, so the reconciler
        # wakes without waiting for its resync interval.
        self._notify = notify or (lambda: None)

    def set_notify(self, notify: Callable[[], None]) -> None:
        self._notify = notify

    @property
    def capacity(self) -> int | None:
        """How many workloads may run at once on this runtime (None: no limit)."""
        return None

    async def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare (connect, adopt what survived a restart). Called once at start."""

    @abc.abstractmethod
    async def start(self, spec: WorkloadSpec) -> WorkloadState:
        """Create the workload. If one with ``spec.key`` exists already, adopt it."""

    @abc.abstractmethod
    async def stop(self, key: str, *, grace_seconds: float = 10.0) -> None:
        """Stop the workload (no-op when unknown or already done)."""

    @abc.abstractmethod
    async def observe(self, key: str) -> WorkloadState | None:
        """The current state, or None when no such workload exists (never created, or vanished)."""

    @abc.abstractmethod
    async def list_workloads(self) -> dict[str, WorkloadState]:
        """All workloads this runtime manages, by key: the level the reconciler compares to rows."""

    @abc.abstractmethod
    async def cleanup(self, key: str) -> None:
        """Remove what is left of a finished workload (pod, deployment, pid files). Idempotent."""

    async def read_logs(self, key: str) -> str | None:
        """Logs of the workload, when the runtime keeps them itself (`capabilities.keeps_logs`:
        k8s); local writes the spec's log_path."""
        return None

    async def list_nodes(self) -> list[ClusterNode]:
        """The machines workloads run on (`polyaxon cluster`). Local and fake: this one."""
        return [this_machine()]

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients, stop watches. Does not stop workloads."""
