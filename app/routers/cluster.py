"""Cluster and nodes (`polyaxon cluster`): the machines the runs execute on, from the runtime."""

from __future__ import annotations

import platform
import uuid as uuid_lib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Request

from app.config import Settings
from app.deps import AuthDep, SettingsDep
from app.errors import NotFound, PlxError
from app.runtimes.base import ClusterNode, Runtime, RuntimeError_, this_machine
from app.runtimes.isolation import runs_share_server_user

router = APIRouter(prefix="/api/v1", tags=["cluster"])

_NAMESPACE = uuid_lib.UUID("5c1e3c55-63f4-4f0e-9a63-6f1f2a0c9d10")


def _plx_version() -> str:
    try:
        return version("plx")
    except PackageNotFoundError:
        return "unknown"


class ClusterUnavailable(PlxError):
    """The runtime could not tell its nodes (Kubernetes API unreachable or refusing)."""

    status_code = 503


def _node_out(node: ClusterNode, sequence: int) -> dict[str, Any]:
    """A v0 ClusterNode: the uuid is derived from the name, so it is the same on every API
    replica and across restarts."""
    return {
        "uuid": uuid_lib.uuid5(_NAMESPACE, f"node:{node.name}").hex,
        "sequence": sequence,
        "name": node.name,
        "hostname": node.hostname,
        "role": node.role,
        "status": node.status,
        "memory": node.memory,
        "cpu": node.cpu,
        "n_gpus": node.n_gpus,
        "kubelet_version": node.kubelet_version,
        "docker_version": node.docker_version,
        "os_image": node.os_image,
        "kernel_version": node.kernel_version,
        "schedulable_taints": node.schedulable_taints,
        "schedulable_state": node.schedulable_state,
        # GPU models and memory need a device daemon on each node; only the count is known.
        "gpus": [],
    }


async def _list_nodes(request: Request, settings: Settings) -> list[ClusterNode]:
    """Through the running reconciler's runtime; an API-only process (reconciler disabled)
    asks a runtime of its own for this one call."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None and settings.runtime != "kubernetes":
        return [this_machine()]
    owned = runtime is None
    if runtime is None:
        from app.reconciler.loop import build_runtime

        runtime = build_runtime(settings)
    try:
        return await runtime.list_nodes()
    except RuntimeError_ as exc:
        raise ClusterUnavailable(exc.message, headers={"Retry-After": "5"}) from exc
    finally:
        if owned:
            await runtime.aclose()


async def _cluster(request: Request, settings: Settings) -> dict[str, Any]:
    nodes = await _list_nodes(request, settings)
    # Sequence numbers follow the nodes' age (then name), so they stay put as nodes join.
    ordered = sorted(nodes, key=lambda node: (node.created_at or "", node.name))
    return {
        "uuid": uuid_lib.uuid5(_NAMESPACE, f"cluster:{settings.data_dir.resolve()}").hex,
        "version_api": {
            "platform": f"{platform.system().lower()}/{platform.machine()}",
            "runtime": settings.runtime,
            "plx_version": _plx_version(),
            "python_version": platform.python_version(),
        },
        # Local runs executing as the server's OS user can read everything it can: such a
        # server is for one trusted user (app/runtimes/isolation.py).
        "runs_isolated": not runs_share_server_user(settings),
        "single_trusted_user": runs_share_server_user(settings) and not settings.local_trust_users,
        "nodes": [_node_out(node, index) for index, node in enumerate(ordered, start=1)],
    }


@router.get("/cluster", summary="The cluster and its nodes")
async def get_cluster(
    request: Request, _principal: AuthDep, settings: SettingsDep
) -> dict[str, Any]:
    return await _cluster(request, settings)


@router.get("/nodes/{sequence}", summary="One node of the cluster, by sequence number")
async def get_node(
    sequence: int, request: Request, _principal: AuthDep, settings: SettingsDep
) -> dict[str, Any]:
    for node in (await _cluster(request, settings))["nodes"]:
        if node["sequence"] == sequence:
            return node
    raise NotFound()
