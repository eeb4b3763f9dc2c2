"""Fixtures: a fake API server, its kubelet, the real client pointed at it, the runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from app.k8s.runtime import KubernetesRuntime
from app.runtimes.base import WorkloadSpec, WorkloadState
from tests.k8s.fake_apiserver import FakeApiServer, FakeKubelet

NAMESPACE = "plx"


def make_spec(key: str = "job-1", **overrides: Any) -> WorkloadSpec:
    run_id = int(overrides.pop("run_id", 1))
    values: dict[str, Any] = {
        "key": key,
        "kind": "job",
        "run_id": run_id,
        "uuid": f"{run_id:032x}",
        "unique_name": f"root.quick-start.jobs.{run_id}",
        "username": "root",
        "project": "quick-start",
        "role": "main",
        "command": "python train.py",
        "image": "python:3.11-slim",
        "env": {"PLX_JOB_ID": str(run_id)},
        "outputs_path": f"/plx/outputs/root/quick-start/jobs/{run_id}",
    }
    values.update(overrides)
    return WorkloadSpec(**values)


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeApiServer]:
    api = FakeApiServer()
    await api.start()
    yield api
    await api.close()


@pytest.fixture
async def kubelet(fake_api: FakeApiServer) -> AsyncIterator[FakeKubelet]:
    node = FakeKubelet(fake_api, step=0.01, run_seconds=0.05)
    node.start()
    yield node
    await node.stop()


@pytest.fixture
async def api_client(fake_api: FakeApiServer) -> AsyncIterator[ApiClient]:
    client = ApiClient(configuration=Configuration(host=fake_api.host))
    yield client
    await client.close()


class Notified:
    """Counts notify() calls, so tests can check the reconciler would be woken."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def notified() -> Notified:
    return Notified()


@pytest.fixture
async def runtime(
    api_client: ApiClient, kubelet: FakeKubelet, notified: Notified
) -> AsyncIterator[KubernetesRuntime]:
    rt = KubernetesRuntime(
        namespace=NAMESPACE, notify=notified, api_client=api_client, resync_seconds=1.0,
        registry="registry.plx.svc:5000",
    )
    await rt.setup()
    yield rt
    await rt.aclose()


async def wait_for(
    probe: Callable[[], Awaitable[Any]], check: Callable[[Any], bool], timeout: float = 5.0
) -> Any:
    """Poll until check(await probe()) holds; the last value otherwise fails the test."""
    deadline = asyncio.get_running_loop().time() + timeout
    value = await probe()
    while not check(value):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; last value: {value!r}")
        await asyncio.sleep(0.01)
        value = await probe()
    return value


async def wait_status(
    rt: KubernetesRuntime, key: str, *statuses: str, timeout: float = 5.0
) -> WorkloadState:
    return await wait_for(
        lambda: rt.observe(key), lambda s: s is not None and s.status in statuses, timeout
    )
