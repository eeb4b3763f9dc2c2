"""Pure mapping of Kubernetes Node objects (raw API dicts) to v0 cluster nodes."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from app.k8s.manifests import GPU_RESOURCE
from app.runtimes.base import ClusterNode

# Kubernetes' resource.Quantity suffixes (binary and decimal SI); `m` is milli.
_SUFFIXES = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]{0,2})$")
# Taints that keep ordinary pods off a node (PreferNoSchedule only discourages).
_BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
_ROLE_LABELS = ("node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane")


def parse_quantity(value: Any) -> Decimal | None:
    """`"3800m"` → 3.8, `"16Gi"` → 17179869184; None when it does not parse."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value or "").strip())
    if match is None or match.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        return None


def _status(conditions: list[dict[str, Any]]) -> str:
    for condition in conditions:
        if condition.get("type") == "Ready":
            status = str(condition.get("status"))
            return {"True": "ready", "False": "not_ready"}.get(status, "unknown")
    return "unknown"


def _hostname(node: dict[str, Any], name: str) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "Hostname" and address.get("address"):
            return address["address"]
    return name


def cluster_node(node: dict[str, Any]) -> ClusterNode:
    """v0's fields from a Node: capacity (not allocatable, as v0 reported), the Ready
    condition, the control-plane role label, taints and cordoning."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    info = status.get("nodeInfo") or {}
    capacity = status.get("capacity") or {}
    name = meta.get("name") or ""
    cpu = parse_quantity(capacity.get("cpu"))
    memory = parse_quantity(capacity.get("memory"))
    gpus = parse_quantity(capacity.get(GPU_RESOURCE))
    labels = meta.get("labels") or {}
    return ClusterNode(
        name=name,
        hostname=_hostname(node, name),
        role="master" if any(label in labels for label in _ROLE_LABELS) else "agent",
        status=_status(status.get("conditions") or []),  # type: ignore[arg-type]
        cpu=float(cpu) if cpu is not None else None,
        memory=int(memory) if memory is not None else None,
        n_gpus=int(gpus) if gpus is not None else 0,
        kubelet_version=info.get("kubeletVersion"),
        docker_version=info.get("containerRuntimeVersion"),
        os_image=info.get("osImage"),
        kernel_version=info.get("kernelVersion"),
        schedulable_taints=any(
            taint.get("effect") in _BLOCKING_EFFECTS for taint in spec.get("taints") or []
        ),
        schedulable_state=not spec.get("unschedulable", False),
        created_at=meta.get("creationTimestamp"),
    )
