"""Kubernetes nodes as v0 cluster nodes: the pure mapping, and the runtime over the fake API."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kubernetes_asyncio.client import ApiClient

from app.k8s.nodes import cluster_node, parse_quantity
from app.k8s.runtime import KubernetesRuntime
from app.runtimes.base import RuntimeError_
from tests.k8s.conftest import NAMESPACE
from tests.k8s.fake_apiserver import FakeApiServer


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4", Decimal(4)),
        ("3800m", Decimal("3.8")),
        ("16331164Ki", Decimal(16331164 * 1024)),
        ("16Gi", Decimal(16 * 2**30)),
        ("8G", Decimal(8 * 10**9)),
        ("1.5e3", Decimal(1500)),
        (2, Decimal(2)),
        ("lots", None),
        ("3Qi", None),
        (None, None),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


def test_a_bare_node_object_maps_to_unknown_defaults():
    node = cluster_node({"metadata": {"name": "n1"}})
    assert (node.name, node.hostname, node.role, node.status) == ("n1", "n1", "agent", "unknown")
    assert node.cpu is None and node.memory is None and node.n_gpus == 0
    assert node.schedulable_state and not node.schedulable_taints


async def test_runtime_lists_the_clusters_nodes(fake_api: FakeApiServer, runtime, kubelet):
    fake_api.add_node(
        "gpu-1", cpu="32", memory="128Gi", gpus=4, ready="False",
        labels={"node-role.kubernetes.io/control-plane": ""},
        taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}], unschedulable=True,
    )
    nodes = {node.name: node for node in await runtime.list_nodes()}
    assert set(nodes) == {kubelet.node, "gpu-1"}
    worker, gpu = nodes[kubelet.node], nodes["gpu-1"]
    assert (worker.role, worker.status, worker.cpu, worker.n_gpus) == ("agent", "ready", 4.0, 0)
    assert worker.memory == 16331164 * 1024 and worker.hostname == kubelet.node
    assert worker.kubelet_version == "v1.29.2" and worker.docker_version.startswith("containerd")
    assert not worker.schedulable_taints and worker.schedulable_state
    assert (gpu.role, gpu.status, gpu.cpu, gpu.memory, gpu.n_gpus) == (
        "master", "not_ready", 32.0, 128 * 2**30, 4
    )
    assert gpu.schedulable_taints and not gpu.schedulable_state


async def test_nodes_forbidden_is_a_clear_final_error(
    fake_api: FakeApiServer, api_client: ApiClient
) -> None:
    fake_api.forbidden_namespaces.add("")  # no ClusterRole to list nodes
    rt = KubernetesRuntime(namespace=NAMESPACE, api_client=api_client)
    try:
        with pytest.raises(RuntimeError_) as err:
            await rt.list_nodes()
    finally:
        await rt.aclose()
    assert not err.value.retryable
    assert "Kubernetes refused to list the cluster's nodes" in err.value.message
    assert 'cannot list resource "nodes"' in err.value.message


async def test_nodes_with_the_api_down_is_retryable(
    fake_api: FakeApiServer, api_client: ApiClient
) -> None:
    await fake_api.stop()
    rt = KubernetesRuntime(namespace=NAMESPACE, api_client=api_client, request_timeout=2)
    try:
        with pytest.raises(RuntimeError_) as err:
            await rt.list_nodes()
    finally:
        await rt.aclose()
    assert err.value.retryable and "unreachable" in err.value.message
