"""End to end on `runtime=kubernetes` (fake API server and kubelet, or a real cluster with
PLX_TEST_KUBECONFIG): builds from a Dockerfile of the uploaded code, notebooks with the
project's code, and the cluster's nodes behind `GET /api/v1/cluster`."""

from __future__ import annotations

import asyncio
import io
import json
import re
import tarfile
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db import session_scope
from app.models import NotebookJob
from app.runtimes.base import RuntimeError_
from tests.k8s.test_reconciler_k8s import (
    NAMESPACE,
    PROJECT,
    REGISTRY,
    Cluster,
    cluster_fixture,  # noqa: F401 - the `cluster` fixture
    create_project,
    env_of,
    fake_only,
    getter,
    post,
    running,
    wait_for,
    wait_status,
)


def tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def upload(client: httpx.AsyncClient, files: dict[str, str]) -> str:
    """Upload a code version; its commit id."""
    blob = tarball(files)
    r = await client.put(
        f"{PROJECT}/repo/upload", files={"repo": ("repo.tar.gz", blob, "application/gzip")}
    )
    assert r.status_code in (200, 201), r.text
    r = await client.get(f"{PROJECT}/repo")
    assert r.status_code == 200, r.text
    return r.json()["current"]["commit"]


async def project(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get(PROJECT)).json()


def _dockerfile_builds_reach_the_runtime() -> bool:
    """Whether app/reconciler/workload_fields.py hands `build.dockerfile` to the runtime (it used to
    refuse it before the Kubernetes runtime could build from a Dockerfile of the code)."""
    from app.reconciler.workload_fields import build_fields

    row = SimpleNamespace(
        id=1, uuid="0" * 32, commit=None,
        config={"version": 1, "kind": "build", "build": {"dockerfile": "Dockerfile"}},
    )
    try:
        fields = build_fields(row, registry=None, project="p", project_id=1)
    except RuntimeError_:
        return False
    return fields.get("dockerfile_path") == "Dockerfile"


# ------------------------------------------------------------------------------------ builds


@pytest.mark.skipif(
    not _dockerfile_builds_reach_the_runtime(),
    reason="app/reconciler/workload_fields.py build_fields does not pass `build.dockerfile` on as "
    "`dockerfile_path` yet (see the k8s helper's report)",
)
async def test_experiment_built_from_a_dockerfile_of_the_code(cluster: Cluster) -> None:
    config = (
        "version: 1\nkind: experiment\nbuild: {dockerfile: ./docker/Dockerfile}\n"
        "run: {cmd: 'python train.py'}"
    )
    if cluster.kubelet is not None:
        cluster.kubelet.run_seconds = 30  # the build runs until the test ends it
    async with running(cluster.settings) as (_, client):
        await create_project(client)
        commit = await upload(client, {
            "docker/Dockerfile": "FROM python:3.11-slim\nCOPY . /code\nWORKDIR /code\n",
            "train.py": "print('trained')\n",
        })
        exp = await post(client, f"{PROJECT}/experiments", {"config": config})
        path = f"{PROJECT}/experiments/{exp['id']}"
        build_path = f"{PROJECT}/builds/{exp['build_job'].rsplit('.', 1)[-1]}"
        if cluster.kubelet is not None:
            build = await wait_status(client, build_path, "running")
            # The experiment waits for its image.
            assert (await client.get(path)).json()["last_status"] == "scheduled"
            assert cluster.created_named("plxjob-") == []
            cluster.kubelet.run_seconds = 0.05  # the experiment's own pod ends at once
            cluster.kubelet.finish(f"plx-build-{build['uuid']}", 0)
        build = await wait_status(client, build_path, "succeeded")
        await wait_status(client, path, "succeeded")
    if cluster.api is None:
        return
    (kaniko,) = cluster.created_named(f"plx-build-{build['uuid']}")
    args = kaniko["spec"]["containers"][0]["args"]
    assert "--dockerfile=/workspace/docker/Dockerfile" in args
    assert "--context=dir:///workspace" in args
    image = f"{REGISTRY}/p_1:{build['uuid']}"
    assert f"--destination={image}" in args
    script = kaniko["spec"]["initContainers"][0]["args"][0]
    assert f"repo/download?commit={commit}" in script and "PLX_DOCKERFILE" not in script
    (master,) = cluster.created_named(f"plxjob-master0-{exp['uuid']}")
    assert master["spec"]["containers"][0]["image"] == image


async def test_a_dockerfile_build_without_code_fails_with_the_reason(cluster: Cluster) -> None:
    if not _dockerfile_builds_reach_the_runtime():
        pytest.skip("app/reconciler/workload_fields.py does not pass `build.dockerfile` on yet")
    config = "version: 1\nkind: build\nbuild: {dockerfile: Dockerfile}"
    async with running(cluster.settings) as (_, client):
        await create_project(client)  # no code uploaded
        build = await post(client, f"{PROJECT}/builds", {"config": config})
        await wait_status(client, f"{PROJECT}/builds/{build['id']}", "failed")
        r = await client.get(f"{PROJECT}/builds/{build['id']}/statuses")
        messages = [s["message"] or "" for s in r.json()["results"]]
        assert any("has no uploaded code" in m for m in messages), messages
    if cluster.api is not None:
        assert cluster.created_named("plx-build-") == []


# --------------------------------------------------------------------------------- notebooks


async def test_notebook_runs_as_deployment_with_the_projects_code(cluster: Cluster) -> None:
    async with running(cluster.settings) as (app, client):
        await create_project(client)
        commit = await upload(client, {"train.py": "print('hi')\n"})
        r = await client.post(f"{PROJECT}/notebook/start", json={})
        assert r.status_code == 201, r.text
        await wait_for(lambda: project(client), lambda p: p.get("has_notebook") is True)
        notebook = await wait_for(getter(client, f"{PROJECT}/notebook"), lambda n: n["url"])
        # Served through plx: the Service's address and jupyter's token stay inside.
        assert notebook["url"].startswith("http://testserver/notebook/root/p/?plx_ticket=")
        async with session_scope(app.state.sessionmaker) as session:
            row = (await session.scalars(select(NotebookJob))).one()
        assert re.fullmatch(rf"http://plx-notebook-{notebook['uuid']}\.{NAMESPACE}\.svc\.cluster"
                            r"\.local:8888", row.url), row.url
        token = row.token
        assert token and token not in notebook["url"]
        if cluster.api is not None:
            (deployment,) = cluster.api.list("deployments", NAMESPACE)
            pod = deployment["spec"]["template"]
            (init,) = pod["spec"]["initContainers"]
            assert f"repo/download?commit={commit}" in init["args"][0]
            main = pod["spec"]["containers"][0]
            assert main["ports"][0]["containerPort"] == 8888 and main["workingDir"] == "/workspace"
            assert env_of(pod)["JUPYTER_TOKEN"] == token and token not in main["args"][0]
            (svc,) = cluster.api.list("services", NAMESPACE)
            assert svc["spec"]["ports"][0]["port"] == 8888
            # What the init container does: fetch the code with the notebook's own token.
            download = await client.get(
                f"{PROJECT}/repo/download?commit={commit}",
                headers={"Authorization": f"token {env_of(pod)['PLX_TOKEN']}"},
            )
            assert download.status_code == 200, download.text
            names = tarfile.open(fileobj=io.BytesIO(download.content)).getnames()
            assert any(name.endswith("train.py") for name in names)
        r = await client.post(f"{PROJECT}/notebook/stop", json={"commit": False})
        assert r.status_code == 200, r.text
        await wait_for(lambda: project(client), lambda p: p.get("has_notebook") is False)
        if cluster.api is not None:
            await wait_for(
                lambda: _async(cluster.api.list("deployments", NAMESPACE)), lambda d: d == []
            )
            assert cluster.api.list("services", NAMESPACE) == []
        assert (await client.get(f"{PROJECT}/notebook")).json()["url"] is None


async def test_notebook_image_from_its_config(cluster: Cluster) -> None:
    config = {"version": 1, "kind": "notebook", "build": {"image": "jupyter/scipy-notebook:lab"}}
    async with running(cluster.settings) as (_, client):
        await create_project(client)
        r = await client.post(f"{PROJECT}/notebook/start", json={"config": config})
        assert r.status_code == 201, r.text
        await wait_for(lambda: project(client), lambda p: p.get("has_notebook") is True)
        if cluster.api is not None:
            (deployment,) = cluster.api.list("deployments", NAMESPACE)
            main = deployment["spec"]["template"]["spec"]["containers"][0]
            assert main["image"] == "jupyter/scipy-notebook:lab"
        r = await client.post(f"{PROJECT}/notebook/stop", json={"commit": False})
        assert r.status_code == 200, r.text


@fake_only
async def test_notebook_pod_is_deleted_with_time_for_its_prestop_upload(cluster: Cluster) -> None:
    """A stop deletes the notebook's pod with its own grace period (60 s: the preStop hook
    uploads the workspace within it), never with grace 0, even over many reconciler passes."""
    assert cluster.api is not None
    async with running(cluster.settings) as (_, client):
        await create_project(client)
        r = await client.post(f"{PROJECT}/notebook/start", json={})
        assert r.status_code == 201, r.text
        await wait_for(lambda: project(client), lambda p: p.get("has_notebook") is True)
        (deployment,) = cluster.api.list("deployments", NAMESPACE)
        template = deployment["spec"]["template"]["spec"]
        assert template["terminationGracePeriodSeconds"] == 60
        assert template["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][0] == "python3"
        r = await client.post(f"{PROJECT}/notebook/stop", json={"commit": True})
        assert r.status_code == 200, r.text
        await wait_for(
            lambda: _async(cluster.api.list("deployments", NAMESPACE)), lambda d: d == []
        )
        assert cluster.api.list("services", NAMESPACE) == []
        await asyncio.sleep(1.0)  # about 20 reconciler passes (interval 0.05 s)
        deletes = [path for method, path in cluster.api.requests
                   if method == "DELETE" and path.split("?")[0].endswith("/pods")]
        assert deletes and all("gracePeriodSeconds=60" in path for path in deletes), deletes


async def _async(value: Any) -> Any:
    return value


# ------------------------------------------------------------------------------------ nodes


async def test_cluster_reports_the_kubernetes_nodes(cluster: Cluster) -> None:
    if cluster.api is not None:
        cluster.api.add_node("gpu-1", cpu="32", memory="128Gi", gpus=4,
                             taints=[{"key": "gpu", "effect": "NoSchedule"}])
    async with running(cluster.settings) as (_, client):
        r = await client.get("/api/v1/cluster/")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version_api"]["runtime"] == "kubernetes"
        nodes = body["nodes"]
        assert [n["sequence"] for n in nodes] == list(range(1, len(nodes) + 1))
        for node in nodes:
            assert node["status"] in ("ready", "not_ready", "unknown") and node["cpu"] > 0
            assert node["role"] in ("master", "agent") and node["memory"] > 0
            r = await client.get(f"/api/v1/nodes/{node['sequence']}/")
            assert r.status_code == 200 and r.json() == node
        r = await client.get(f"/api/v1/nodes/{len(nodes) + 1}")
        assert r.status_code == 404
    if cluster.api is None:
        return
    by_name = {n["name"]: n for n in nodes}
    assert set(by_name) == {cluster.kubelet.node, "gpu-1"}
    gpu = by_name["gpu-1"]
    assert (gpu["cpu"], gpu["memory"], gpu["n_gpus"]) == (32.0, 128 * 2**30, 4)
    assert gpu["schedulable_taints"] is True and gpu["hostname"] == "gpu-1"
    assert by_name[cluster.kubelet.node]["kubelet_version"] == "v1.29.2"
    assert json.dumps(by_name)  # plain JSON all the way


async def test_cluster_without_rights_on_nodes_answers_503(cluster: Cluster) -> None:
    if cluster.api is None:
        pytest.skip("needs the fake API server's hooks (not a real cluster)")
    cluster.api.forbidden_namespaces.add("")
    async with running(cluster.settings) as (_, client):
        r = await client.get("/api/v1/cluster")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert 'cannot list resource "nodes"' in r.json()["detail"]
