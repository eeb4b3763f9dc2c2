"""Cluster and nodes (`polyaxon cluster`): the machine the runs execute on."""

from __future__ import annotations

import os
import platform
import socket
import uuid as uuid_lib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter

from app.config import Settings
from app.deps import AuthDep, SettingsDep
from app.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["cluster"])

_NAMESPACE = uuid_lib.UUID("5c1e3c55-63f4-4f0e-9a63-6f1f2a0c9d10")


def _plx_version() -> str:
    try:
        return version("plx")
    except PackageNotFoundError:
        return "unknown"


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


def _local_node() -> dict[str, Any]:
    """This machine as a v0 ClusterNode (the local runtime runs everything here)."""
    hostname = socket.gethostname()
    return {
        "uuid": uuid_lib.uuid5(_NAMESPACE, f"node:{hostname}").hex,
        "sequence": 1,
        "name": hostname,
        "hostname": hostname,
        "role": "master",
        "status": "ready",
        "memory": _memory_bytes(),
        "cpu": float(os.cpu_count() or 1),
        "n_gpus": 0,
        "kubelet_version": None,
        "docker_version": None,
        "os_image": _os_image(),
        "kernel_version": platform.release(),
        "schedulable_taints": False,
        "schedulable_state": True,
        "gpus": [],
    }


def _cluster(settings: Settings) -> dict[str, Any]:
    return {
        "uuid": uuid_lib.uuid5(_NAMESPACE, f"cluster:{settings.data_dir.resolve()}").hex,
        "version_api": {
            "platform": f"{platform.system().lower()}/{platform.machine()}",
            "runtime": settings.runtime,
            "plx_version": _plx_version(),
            "python_version": platform.python_version(),
        },
        # Kubernetes nodes are not listed: plx reports the machine serving the API.
        "nodes": [_local_node()],
    }


@router.get("/cluster", summary="The cluster and its nodes")
async def get_cluster(_principal: AuthDep, settings: SettingsDep) -> dict[str, Any]:
    return _cluster(settings)


@router.get("/nodes/{sequence}", summary="One node of the cluster, by sequence number")
async def get_node(sequence: int, _principal: AuthDep, settings: SettingsDep) -> dict[str, Any]:
    for node in _cluster(settings)["nodes"]:
        if node["sequence"] == sequence:
            return node
    raise NotFound()
