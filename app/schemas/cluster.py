"""The cluster and its nodes (`polyaxon cluster`), as v0 shaped them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class VersionApiOut(BaseModel):
    platform: str
    runtime: str
    plx_version: str
    python_version: str


class NodeOut(BaseModel):
    uuid: str
    sequence: int
    name: str
    hostname: str
    role: str
    status: str
    memory: int | None
    cpu: int | float | None  # as the runtime counted it (an int stays an int)
    n_gpus: int
    kubelet_version: str | None
    docker_version: str | None
    os_image: str | None
    kernel_version: str | None
    schedulable_taints: bool
    schedulable_state: bool
    # GPU models and memory need a device daemon on each node; only the count is known.
    gpus: list[Any] = []


class ClusterOut(BaseModel):
    uuid: str
    version_api: VersionApiOut
    # Local runs executing as the server's OS user can read everything it can: such a server
    # is for one trusted user (app/runtimes/isolation.py).
    runs_isolated: bool
    single_trusted_user: bool
    nodes: list[NodeOut]
