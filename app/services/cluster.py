"""The machines the runs execute on, as the runtime tells them."""

from __future__ import annotations

import dataclasses
import platform
import uuid as uuid_lib
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from app.config import Settings
from app.errors import NotFound, PlxError
from app.runtimes.base import ClusterNode, Runtime, RuntimeError_, this_machine
from app.runtimes.isolation import runs_share_server_user
from app.schemas.cluster import ClusterOut, NodeOut, VersionApiOut

# uuids derived from names: the same on every API replica and across restarts.
_NAMESPACE = uuid_lib.UUID("5c1e3c55-63f4-4f0e-9a63-6f1f2a0c9d10")


class ClusterUnavailable(PlxError):
    """The runtime could not tell its nodes (Kubernetes API unreachable or refusing)."""

    status_code = 503


def _plx_version() -> str:
    try:
        return version("plx")
    except PackageNotFoundError:
        return "unknown"


async def list_nodes(
    settings: Settings, runtime: Runtime | None, build_runtime: Callable[[Settings], Runtime]
) -> list[ClusterNode]:
    """Through the running reconciler's `runtime`; an API-only process (reconciler disabled)
    builds a runtime of its own for this one call."""
    if runtime is None and settings.runtime != "kubernetes":
        return [this_machine()]
    owned = runtime is None
    if runtime is None:
        runtime = build_runtime(settings)
    try:
        return await runtime.list_nodes()
    except RuntimeError_ as exc:
        raise ClusterUnavailable(exc.message, headers={"Retry-After": "5"}) from exc
    finally:
        if owned:
            await runtime.aclose()


def _node_out(node: ClusterNode, sequence: int) -> NodeOut:
    facts = dataclasses.asdict(node)
    del facts["created_at"]
    return NodeOut(
        uuid=uuid_lib.uuid5(_NAMESPACE, f"node:{node.name}").hex, sequence=sequence, **facts
    )


def cluster_out(settings: Settings, nodes: list[ClusterNode]) -> ClusterOut:
    # Sequence numbers follow the nodes' age (then name), so they stay put as nodes join.
    ordered = sorted(nodes, key=lambda node: (node.created_at or "", node.name))
    shared = runs_share_server_user(settings)
    return ClusterOut(
        uuid=uuid_lib.uuid5(_NAMESPACE, f"cluster:{settings.data_dir.resolve()}").hex,
        version_api=VersionApiOut(
            platform=f"{platform.system().lower()}/{platform.machine()}",
            runtime=settings.runtime,
            plx_version=_plx_version(),
            python_version=platform.python_version(),
        ),
        runs_isolated=not shared,
        single_trusted_user=shared and not settings.local_trust_users,
        nodes=[_node_out(node, index) for index, node in enumerate(ordered, start=1)],
    )


async def describe(
    settings: Settings, runtime: Runtime | None, build_runtime: Callable[[Settings], Runtime]
) -> ClusterOut:
    return cluster_out(settings, await list_nodes(settings, runtime, build_runtime))


def node(cluster: ClusterOut, sequence: int) -> NodeOut:
    for candidate in cluster.nodes:
        if candidate.sequence == sequence:
            return candidate
    raise NotFound()
