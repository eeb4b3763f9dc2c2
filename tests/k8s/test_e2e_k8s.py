"""A real `plx server` process with PLX_RUNTIME=kubernetes against the fake API server (run in a
thread with its own event loop): a sweep survives `kill -9` of the server, and the restarted
server adopts the pods that kept running instead of creating them again."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, server  # noqa: F401 - the fixture is used below
from tests.k8s.fake_apiserver import FakeApiServer, FakeKubelet

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("PLX_TEST_KUBECONFIG")),
    reason="needs the fake API server's request log and kubelet (not a real cluster)",
)
NAMESPACE = "plx"
PROJECT = "/api/v1/admin/p"
GROUP = """
version: 1
kind: group
build: {image: 'busybox:1.36'}
hptuning: {concurrency: 2, matrix: {x: {values: [30, 31, 32, 33]}}}
run: {cmd: 'sleep {{ x }}'}
"""


class FakeCluster:
    """The fake API server and kubelet on an event loop of their own (the test is sync)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.api = FakeApiServer()
        self.host = self.call(self.api.start())
        self.kubelet = FakeKubelet(self.api, step=0.01, run_seconds=0.05)
        self.loop.call_soon_threadsafe(self.kubelet.start)

    def call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(10)

    def run(self, fn: Callable[[], Any]) -> Any:
        async def inline() -> Any:
            return fn()

        return self.call(inline())

    def pod_posts(self) -> int:
        path = f"/api/v1/namespaces/{NAMESPACE}/pods"
        return self.run(
            lambda: sum(1 for m, p in self.api.requests if m == "POST" and p.split("?")[0] == path)
        )

    def experiment_pods(self) -> list[str]:
        return self.run(
            lambda: [
                p["metadata"]["name"]
                for p in self.api.list("pods", NAMESPACE, "app=polyaxon-experiment")
                if not p["metadata"].get("deletionTimestamp")
            ]
        )

    def finish(self, name: str) -> None:
        self.loop.call_soon_threadsafe(self.kubelet.finish, name, 0)

    def close(self) -> None:
        self.call(self.kubelet.stop())
        self.call(self.api.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def fake_cluster() -> Iterator[FakeCluster]:
    cluster = FakeCluster()
    yield cluster
    cluster.close()


def wait(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def statuses(client: httpx.Client, gid: int) -> list[str]:
    r = client.get(f"{PROJECT}/groups/{gid}/experiments?limit=100")
    assert r.status_code == 200, r.text
    return [e["last_status"] for e in r.json()["results"]]


def test_kill_9_mid_sweep_then_restart_adopts_pods(
    server: Callable[..., Server],  # noqa: F811
    fake_cluster: FakeCluster,
    tmp_path: Any,
) -> None:
    overrides = {
        "runtime": "kubernetes",
        "k8s_namespace": NAMESPACE,
        "k8s_api_host": fake_cluster.host,
        "k8s_resync_seconds": 2,
        "reconcile_interval": 0.1,
    }
    data = tmp_path / "plx"
    srv = server(data_dir=data, **overrides)
    with srv.client() as client:
        assert client.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        r = client.post(f"{PROJECT}/groups", json={"content": GROUP})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]
        wait(lambda: statuses(client, gid).count("running") == 2)
    srv.kill()  # SIGKILL: no shutdown, the pods keep running
    posts = fake_cluster.pod_posts()
    assert posts == 3  # the shared build, then two experiments
    srv = server(data_dir=data, **overrides)
    with srv.client() as client:
        time.sleep(1.5)  # a dozen reconcile passes
        assert fake_cluster.pod_posts() == posts
        assert statuses(client, gid).count("running") == 2

        def finish_running() -> bool:
            for name in fake_cluster.experiment_pods():
                fake_cluster.finish(name)
            return statuses(client, gid) == ["succeeded"] * 4

        wait(finish_running)
        wait(lambda: client.get(f"{PROJECT}/groups/{gid}").json()["last_status"] == "succeeded")
    assert fake_cluster.pod_posts() == 5
