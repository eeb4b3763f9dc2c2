"""The real app, reconciler enabled, `runtime=kubernetes`, end to end against the fake API server
and its kubelet (or a real cluster when PLX_TEST_KUBECONFIG is set).

Only the HTTP API, the database and the cluster's objects are observed: what a user would see.
Tests that need the fake's hooks (cut watches, request log, API server down, ending a pod on
demand) skip on a real cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from app.config import Settings
from app.k8s.config import new_api_client
from app.main import create_app
from tests.k8s.fake_apiserver import FakeApiServer, FakeKubelet

REAL_KUBECONFIG = os.environ.get("PLX_TEST_KUBECONFIG")
NAMESPACE = os.environ.get("PLX_TEST_K8S_NAMESPACE", "default") if REAL_KUBECONFIG else "plx"
REGISTRY = os.environ.get("PLX_TEST_K8S_REGISTRY", "registry.plx.svc:5000")
PROJECT = "/api/v1/root/p"
PODS_PATH = f"/api/v1/namespaces/{NAMESPACE}/pods"
TIMEOUT = 120.0 if REAL_KUBECONFIG else 10.0
BUILD = "build: {image: 'busybox:1.36'}"

fake_only = pytest.mark.skipif(
    bool(REAL_KUBECONFIG), reason="needs the fake API server's hooks (not a real cluster)"
)


@dataclass
class Cluster:
    """Where workloads go, and a direct view of its pods (the state of the world)."""

    settings: Settings
    api: FakeApiServer | None = None
    kubelet: FakeKubelet | None = None
    created: list[dict[str, Any]] = field(default_factory=list)  # every pod ever ADDED

    async def pods(self, selector: str = "app.kubernetes.io/managed-by=plx") -> list[dict]:
        client = await _client(self.settings)
        try:
            # Raw JSON: the client's models reject what a kubelet may leave unset (imageID).
            resp = await CoreV1Api(client).list_namespaced_pod(
                NAMESPACE, label_selector=selector, _preload_content=False
            )
            items = json.loads(await resp.read())["items"]
            return [p for p in items if not p["metadata"].get("deletionTimestamp")]
        finally:
            await client.close()

    def pod_creates(self) -> int:
        """POSTs of pods that the fake API server answered."""
        assert self.api is not None
        return sum(
            1
            for method, path in self.api.requests
            if method == "POST" and path.split("?")[0] == PODS_PATH
        )

    def created_named(self, prefix: str) -> list[dict[str, Any]]:
        return [p for p in self.created if p["metadata"]["name"].startswith(prefix)]


async def _client(settings: Settings) -> ApiClient:
    if settings.k8s_api_host:
        return ApiClient(configuration=Configuration(host=settings.k8s_api_host))
    return await new_api_client(REAL_KUBECONFIG)


@pytest.fixture(name="cluster")
async def cluster_fixture(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Cluster]:
    db = tmp_path / "plx.db"
    shutil.copy(sqlite_template, db)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{db}",
        runtime="kubernetes",
        api_url="http://testserver",
        admin_username="root",
        admin_password="password123",
        reconcile_interval=0.05,
        stop_grace_seconds=0,
        k8s_namespace=NAMESPACE,
        k8s_registry=REGISTRY,
        k8s_resync_seconds=1.0,
        k8s_allowed_secrets=["creds"],  # the operator's allow-list (issue 16.2)
    )
    if REAL_KUBECONFIG:
        monkeypatch.setenv("KUBECONFIG", REAL_KUBECONFIG)
        yield Cluster(settings)
        return
    api = FakeApiServer()
    settings.k8s_api_host = await api.start()
    kubelet = FakeKubelet(api, step=0.01, run_seconds=0.05)
    kubelet.start()
    world = Cluster(settings, api, kubelet)

    def record(kind: str, resource: str, obj: dict[str, Any]) -> None:
        if kind == "ADDED" and resource == "pods":
            world.created.append(json.loads(json.dumps(obj)))

    api.listeners.append(record)
    try:
        yield world
    finally:
        await kubelet.stop()
        await api.close()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """One plx process: app + reconciler; leaving the block is the process ending."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.post(
                "/api/v1/users/token", json={"username": "root", "password": "password123"}
            )
            assert r.status_code == 200, r.text
            c.headers["Authorization"] = f"token {r.json()['token']}"
            yield app, c


async def wait_for(
    probe: Callable[[], Awaitable[Any]], check: Callable[[Any], bool], timeout: float = TIMEOUT
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    value = await probe()
    while not check(value):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; last value: {value!r}")
        await asyncio.sleep(0.02)
        value = await probe()
    return value


def getter(client: httpx.AsyncClient, path: str) -> Callable[[], Awaitable[Any]]:
    async def probe() -> Any:
        r = await client.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    return probe


async def wait_status(client: httpx.AsyncClient, path: str, *statuses: str) -> dict[str, Any]:
    return await wait_for(getter(client, path), lambda body: body["last_status"] in statuses)


async def create_project(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/projects", json={"name": "p"})
    assert r.status_code == 201, r.text


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(path, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def experiment(cmd: str, extra: str = "") -> str:
    return f"version: 1\nkind: experiment\n{BUILD}\nrun: {{cmd: {json.dumps(cmd)}}}\n{extra}"


def group(cmd: str, values: list[int], concurrency: int) -> str:
    return (
        f"version: 1\nkind: group\n{BUILD}\n"
        f"hptuning: {{concurrency: {concurrency}, matrix: {{x: {{values: {values}}}}}}}\n"
        f"run: {{cmd: {json.dumps(cmd)}}}\n"
    )


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    container = pod["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container.get("env") or []}


async def experiments_of(client: httpx.AsyncClient, gid: int) -> list[dict[str, Any]]:
    r = await client.get(f"{PROJECT}/groups/{gid}/experiments?limit=1000")
    assert r.status_code == 200, r.text
    return r.json()["results"]


# --------------------------------------------------------------------------------------- runs


async def test_experiment_job_and_build_run_end_to_end(cluster: Cluster) -> None:
    async with running(cluster.settings) as (app, client):
        await create_project(client)
        ok = await post(
            client,
            f"{PROJECT}/experiments",
            {
                "config": experiment(
                    "echo done",
                    "environment: {resources: {cpu: {requests: 0.5}},"
                    " node_selector: {disk: ssd}, secret_refs: [creds]}",
                ),
            },
        )
        bad = await post(client, f"{PROJECT}/experiments", {"config": experiment("exit 3")})
        job = await post(
            client,
            f"{PROJECT}/jobs",
            {
                "config": f"version: 1\nkind: job\n{BUILD}\nrun: {{cmd: 'echo job'}}",
            },
        )
        build = await post(
            client,
            f"{PROJECT}/builds",
            {
                "config": "version: 1\nkind: build\nbuild: {image: 'python:3.11', "
                "build_steps: ['pip install numpy']}",
            },
        )
        done = await wait_status(client, f"{PROJECT}/experiments/{ok['id']}", "succeeded")
        failed = await wait_status(client, f"{PROJECT}/experiments/{bad['id']}", "failed")
        await wait_status(client, f"{PROJECT}/jobs/{job['id']}", "succeeded")
        await wait_status(client, f"{PROJECT}/builds/{build['id']}", "succeeded")
        assert done["build_job"] is not None
        statuses = (await client.get(f"{PROJECT}/experiments/{bad['id']}/statuses")).json()
        assert any("exit code 3" in (s["message"] or "") for s in statuses["results"]), failed
        # Finished runs leave no pods behind.
        await wait_for(cluster.pods, lambda pods: pods == [])
    if cluster.api is None:
        return
    (pod,) = cluster.created_named(f"plxjob-master0-{ok['uuid']}")
    env = env_of(pod)
    assert env["PLX_EXPERIMENT_ID"] == str(ok["id"]) and env["POLYAXON_IN_CLUSTER"] == "true"
    assert env["PLX_API_URL"] == "http://testserver" and env["PLX_TOKEN"]
    main = pod["spec"]["containers"][0]
    assert main["command"] == ["/bin/bash", "-c"] and main["args"] == ["echo done"]
    assert main["image"].startswith(f"{REGISTRY}/p_") and main["resources"]["requests"] == {
        "cpu": "500m"
    }
    assert main["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"}
    (kaniko,) = cluster.created_named(f"plx-build-{build['uuid']}")
    args = kaniko["spec"]["containers"][0]["args"]
    assert f"--destination={REGISTRY}/p_1:{build['uuid']}" in args
    dockerfile = env_of({"spec": {"containers": kaniko["spec"]["initContainers"]}})
    assert "FROM python:3.11" in dockerfile["PLX_DOCKERFILE"]
    assert "RUN pip install numpy" in dockerfile["PLX_DOCKERFILE"]


async def test_failed_build_fails_its_experiment(cluster: Cluster) -> None:
    config = (
        "version: 1\nkind: experiment\nbuild: {image: 'busybox:1.36', build_steps: ['exit 1']}\n"
        "run: {cmd: 'echo never'}"
    )
    if cluster.kubelet is not None:
        cluster.kubelet.run_seconds = 30  # the build runs until the test ends it
    async with running(cluster.settings) as (_, client):
        await create_project(client)
        exp = await post(client, f"{PROJECT}/experiments", {"config": config})
        path = f"{PROJECT}/experiments/{exp['id']}"
        build_id = exp["build_job"].rsplit(".", 1)[-1]  # the v0 shape: its unique name
        build_path = f"{PROJECT}/builds/{build_id}"
        if cluster.kubelet is not None:
            build = await wait_status(client, build_path, "running")
            assert (await client.get(path)).json()["last_status"] == "scheduled"
            cluster.kubelet.finish(f"plx-build-{build['uuid']}", 1)  # kaniko: RUN exit 1
        await wait_status(client, build_path, "failed")
        await wait_status(client, path, "failed")
        statuses = (await client.get(f"{path}/statuses")).json()["results"]
        assert f"Its build {build_id} ended `failed`." in [s["message"] for s in statuses]
        assert cluster.created_named("plxjob-") == []


async def test_distributed_experiment_master_workers_ps(cluster: Cluster) -> None:
    env = "environment: {tensorflow: {n_workers: 2, n_ps: 1}}"
    async with running(cluster.settings) as (_, client):
        await create_project(client)
        exp = await post(
            client,
            f"{PROJECT}/experiments",
            {
                "config": experiment("echo train", env),
            },
        )
        await wait_status(client, f"{PROJECT}/experiments/{exp['id']}", "succeeded")
        r = await client.get(f"{PROJECT}/experiments/{exp['id']}/jobs")
        jobs = r.json()["results"]
        assert sorted(j["role"] for j in jobs) == ["master", "ps", "worker", "worker"]
        # No replica outlives its experiment (the master's end ends the others).
        assert {j["last_status"] for j in jobs} <= {"succeeded", "stopped"}
        assert [j["last_status"] for j in jobs if j["role"] == "master"] == ["succeeded"]
    if cluster.api is None:
        return
    pods = cluster.created_named("plxjob-")
    names = sorted(p["metadata"]["name"] for p in pods)
    uuid = exp["uuid"]
    assert names == sorted(f"plxjob-{r}-{uuid}" for r in ("master0", "ps0", "worker0", "worker1"))
    tf = json.loads(env_of(pods[0])["TF_CONFIG"])
    assert tf["cluster"]["worker"] == [f"plxjob-worker{i}-{uuid}:2222" for i in (0, 1)]
    assert {json.loads(env_of(p)["POLYAXON_TASK_INFO"])["type"] for p in pods} == {
        "master",
        "worker",
        "ps",
    }
    services = [
        m
        for m, p in cluster.api.requests
        if m == "POST" and p.endswith(f"/namespaces/{NAMESPACE}/services")
    ]
    assert len(services) == 4


async def test_tensorboard_runs_as_deployment_and_stops(cluster: Cluster) -> None:
    async with running(cluster.settings) as (_, client):
        await create_project(client)
        r = await client.post(f"{PROJECT}/tensorboard/start", json={})
        assert r.status_code == 201, r.text

        async def project() -> Any:
            return (await client.get(PROJECT)).json()

        await wait_for(project, lambda p: p.get("has_tensorboard") is True)
        if cluster.api is not None:
            (deployment,) = await wait_for(
                lambda: _async(cluster.api.list("deployments", NAMESPACE)), lambda d: len(d) == 1
            )
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            assert container["ports"][0]["containerPort"] == 6006
            assert "tensorboard --logdir" in container["args"][0]
            (svc,) = cluster.api.list("services", NAMESPACE)
            assert svc["spec"]["ports"][0]["port"] == 6006
        r = await client.post(f"{PROJECT}/tensorboard/stop")
        assert r.status_code == 200, r.text
        await wait_for(project, lambda p: p.get("has_tensorboard") is False)
        if cluster.api is not None:
            await wait_for(
                lambda: _async(cluster.api.list("deployments", NAMESPACE)), lambda d: d == []
            )


async def _async(value: Any) -> Any:
    return value


# -------------------------------------------------------------------------------------- sweeps


async def test_group_sweep_respects_concurrency(cluster: Cluster) -> None:
    live: set[str] = set()
    peak = 0

    def track(kind: str, resource: str, obj: dict[str, Any]) -> None:
        nonlocal peak
        name = obj["metadata"]["name"]
        if resource != "pods" or not name.startswith("plxjob-"):
            return
        phase = (obj.get("status") or {}).get("phase")
        if kind == "DELETED" or phase in ("Succeeded", "Failed"):
            live.discard(name)
        else:
            live.add(name)
        peak = max(peak, len(live))

    if cluster.api is not None:
        cluster.api.listeners.append(track)
    async with running(cluster.settings) as (_, client):
        await create_project(client)
        gid = (
            await post(
                client,
                f"{PROJECT}/groups",
                {
                    "content": group("sleep 0.{{ x }}", [1, 2, 3, 4, 5], concurrency=2),
                },
            )
        )["id"]
        await wait_status(client, f"{PROJECT}/groups/{gid}", "succeeded")
        exps = await experiments_of(client, gid)
        assert len(exps) == 5 and {e["last_status"] for e in exps} == {"succeeded"}
    if cluster.api is not None:
        assert peak == 2
        assert len(cluster.created_named("plxjob-")) == 5
        assert len(cluster.created_named("plx-build-")) == 1  # the group's shared build


@fake_only
async def test_restart_mid_sweep_adopts_pods_without_duplicates(cluster: Cluster) -> None:
    assert cluster.api is not None and cluster.kubelet is not None
    content = group("sleep {{ x }}", [30, 31, 32, 33], concurrency=2)
    async with running(cluster.settings) as (app, client):
        await create_project(client)
        gid = (await post(client, f"{PROJECT}/groups", {"content": content}))["id"]

        async def running_count() -> int:
            return sum(e["last_status"] == "running" for e in await experiments_of(client, gid))

        await wait_for(running_count, lambda n: n == 2)
    # The process is gone; its pods are not.
    creates = cluster.pod_creates()
    assert creates == 3  # the shared build and two experiments
    async with running(cluster.settings) as (app, client):
        passes = app.state.reconciler.passes
        await wait_for(lambda: _async(app.state.reconciler.passes), lambda p: p >= passes + 20)
        assert cluster.pod_creates() == creates
        statuses = [e["last_status"] for e in await experiments_of(client, gid)]
        assert (
            sorted(statuses) == ["created", "created", "running", "running"]
            or statuses.count("running") == 2
        )
        # The adopted pods finish; the sweep continues with the rest, still two at a time.
        for pod in await cluster.pods("app=polyaxon-experiment"):
            cluster.kubelet.finish(pod["metadata"]["name"], 0)

        async def finish_all() -> list[str]:
            for pod in await cluster.pods("app=polyaxon-experiment"):
                cluster.kubelet.finish(pod["metadata"]["name"], 0)
            return [e["last_status"] for e in await experiments_of(client, gid)]

        await wait_for(finish_all, lambda s: s == ["succeeded"] * 4)
        await wait_status(client, f"{PROJECT}/groups/{gid}", "succeeded")
    names = [p["metadata"]["name"] for p in cluster.created]
    assert len(names) == len(set(names)) == cluster.pod_creates() == 5


async def test_deleting_a_group_deletes_its_pods(cluster: Cluster) -> None:
    async with running(cluster.settings) as (_, client):
        await create_project(client)
        gid = (
            await post(
                client,
                f"{PROJECT}/groups",
                {
                    "content": group("sleep {{ x }}", [30, 31, 32], concurrency=2),
                },
            )
        )["id"]
        selector = f"experiment_group_id={gid}"
        await wait_for(lambda: cluster.pods(selector), lambda pods: len(pods) == 2)
        r = await client.delete(f"{PROJECT}/groups/{gid}")
        assert r.status_code == 204, r.text
        await wait_for(lambda: cluster.pods(selector), lambda pods: pods == [])
        if cluster.api is not None:
            assert cluster.api.list("services", NAMESPACE) == []


# ------------------------------------------------------------------------------ observation


@fake_only
async def test_dropped_watch_and_missed_event_are_healed_by_resync(cluster: Cluster) -> None:
    assert cluster.api is not None and cluster.kubelet is not None
    async with running(cluster.settings) as (app, client):
        await create_project(client)
        first = await post(client, f"{PROJECT}/experiments", {"config": experiment("sleep 30")})
        path = f"{PROJECT}/experiments/{first['id']}"
        await wait_status(client, path, "running")
        # A half-open watch: the pod's end is never streamed; only a re-list sees it.
        cluster.api.blackhole_watches()
        cluster.kubelet.finish(f"plxjob-master0-{first['uuid']}", 0)
        await wait_status(client, path, "succeeded")
        # A watch cut while a pod ends: the next list sees its end.
        second = await post(client, f"{PROJECT}/experiments", {"config": experiment("sleep 30")})
        path = f"{PROJECT}/experiments/{second['id']}"
        await wait_status(client, path, "running")
        cluster.api.drop_watches()
        cluster.kubelet.finish(f"plxjob-master0-{second['uuid']}", 0)
        await wait_status(client, path, "succeeded")
        # History compacted while a pod failed: 410 Gone, re-list.
        third = await post(client, f"{PROJECT}/experiments", {"config": experiment("sleep 30")})
        path = f"{PROJECT}/experiments/{third['id']}"
        await wait_status(client, path, "running")
        cluster.api.expire_watches()
        cluster.kubelet.finish(f"plxjob-master0-{third['uuid']}", 2)
        await wait_status(client, path, "failed")
        stats = app.state.runtime.stats
        assert stats["relists"] >= 4 and stats["gone"] >= 1


@fake_only
async def test_api_server_down_runs_wait_then_proceed(cluster: Cluster) -> None:
    assert cluster.api is not None and cluster.kubelet is not None
    await cluster.api.stop()
    async with running(cluster.settings) as (app, client):
        await create_project(client)  # the API answers while Kubernetes is down
        exp = await post(client, f"{PROJECT}/experiments", {"config": experiment("echo hi")})
        path = f"{PROJECT}/experiments/{exp['id']}"
        await asyncio.sleep(1.0)
        body = (await client.get(path)).json()
        assert body["last_status"] in ("created", "scheduled")
        assert cluster.api.objects == {}
        await cluster.api.start()
        await wait_status(client, path, "succeeded")
        # Down while a run is running: it keeps its status, then ends normally.
        slow = await post(client, f"{PROJECT}/experiments", {"config": experiment("sleep 30")})
        path = f"{PROJECT}/experiments/{slow['id']}"
        await wait_status(client, path, "running")
        await cluster.api.stop()
        await asyncio.sleep(1.5)
        assert (await client.get(path)).json()["last_status"] == "running"
        cluster.kubelet.finish(f"plxjob-master0-{slow['uuid']}", 0)
        await cluster.api.start()
        await wait_status(client, path, "succeeded")
