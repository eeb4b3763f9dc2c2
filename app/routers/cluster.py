"""Cluster and nodes (`polyaxon cluster`): the machines the runs execute on, from the runtime.

The contract declares both answers as free-form objects: the models are dumped to them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from app.deps import AuthDep, SettingsDep
from app.reconciler.loop import build_runtime
from app.schemas.cluster import ClusterOut
from app.services import cluster as service

router = APIRouter(prefix="/api/v1", tags=["cluster"])


async def current_cluster(request: Request, _caller: AuthDep, settings: SettingsDep) -> ClusterOut:
    runtime = getattr(request.app.state, "runtime", None)
    return await service.describe(settings, runtime, build_runtime)


ClusterDep = Annotated[ClusterOut, Depends(current_cluster)]


@router.get("/cluster", summary="The cluster and its nodes")
async def get_cluster(cluster: ClusterDep) -> dict[str, Any]:
    return cluster.model_dump(mode="json")


@router.get("/nodes/{sequence}", summary="One node of the cluster, by sequence number")
async def get_node(sequence: int, cluster: ClusterDep) -> dict[str, Any]:
    return service.node(cluster, sequence).model_dump(mode="json")
