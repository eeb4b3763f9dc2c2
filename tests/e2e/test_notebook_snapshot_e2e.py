"""The notebook's preStop hook, executed for real: a `plx server` subprocess on the Kubernetes
runtime (against the fake API server on a thread of this test, reached through `KUBECONFIG`)
creates the notebook's Deployment; the hook's command and environment are read from that
Deployment and run with `python3` on a temporary directory standing for the pod's workspace,
as the kubelet would run it when the stop deletes the pod."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.k8s.manifests import MAIN_CONTAINERS, NOTEBOOK_SNAPSHOT_SCRIPT
from tests.e2e.conftest import K8S_NAMESPACE, Server
from tests.k8s.fake_apiserver_runner import FakeClusterThread

pytestmark = pytest.mark.e2e

NAMESPACE = K8S_NAMESPACE
PROJECT = "/api/v1/admin/nb"
PYTHON3 = shutil.which("python3") or sys.executable


@pytest.fixture
def plx(server: Callable[..., Server], fake_cluster: FakeClusterThread) -> Server:
    return server(runtime="kubernetes", k8s_namespace=NAMESPACE, reconcile_interval=0.2)


def wait_for(probe: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    value = probe()
    while not check(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value: {value!r}")
        time.sleep(0.1)
        value = probe()
    return value


def notebook_pod(cluster: FakeClusterThread) -> dict[str, Any]:
    """The pod template of the notebook's Deployment, as the API server holds it."""

    def deployments() -> list[dict[str, Any]]:
        found = cluster.run(lambda: cluster.api.list("deployments", NAMESPACE))
        return json.loads(json.dumps(found))

    (deployment,) = wait_for(deployments, lambda d: len(d) == 1)
    return deployment["spec"]["template"]


def hook_of(template: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The preStop command, and the environment of the container it runs in."""
    (main,) = [
        c for c in template["spec"]["containers"] if c["name"] == MAIN_CONTAINERS["notebook"]
    ]
    command = main["lifecycle"]["preStop"]["exec"]["command"]
    env = {e["name"]: e["value"] for e in main["env"]}
    return command, env


def run_hook(
    command: list[str],
    env: dict[str, str],
    workspace: Path,
    *,
    timeout: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`python3 -c SCRIPT WORKSPACE PATH TIMEOUT` with the pod's environment (and a local
    directory for its workspace, `/workspace` in the pod)."""
    assert command[:2] == ["python3", "-c"] and command[3] == "/workspace"
    argv = [PYTHON3, "-c", command[2], str(workspace), command[4], timeout or command[5]]
    pod_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env, **(extra_env or {})}
    started = time.monotonic()
    done = subprocess.run(argv, env=pod_env, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


def make_workspace(root: Path) -> dict[str, bytes]:
    """A notebook's workspace after some work; what the new version must hold."""
    kept = {
        "train.py": b"print('trained')\n",
        "analysis.ipynb": b'{"cells": [], "nbformat": 4}\n',
        "data/results.csv": b"epoch,loss\n1,0.5\n",
    }
    for name, data in kept.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    # Left out, as the local runtime's snapshot leaves them out.
    for name in (".ipynb_checkpoints/analysis-checkpoint.ipynb", ".git/HEAD", "__pycache__/x.pyc"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"skip me")
    (root / "data" / "link.csv").symlink_to("results.csv")  # inside the tree: kept
    (root / "passwd").symlink_to("/etc/passwd")  # outside: dropped
    os.link(root / "train.py", root / "train_copy.py")  # a hard link: stored as a file
    return {**kept, "train_copy.py": kept["train.py"]}


def downloaded(client: httpx.Client, commit: str) -> tuple[dict[str, bytes], dict[str, str]]:
    r = client.get(f"{PROJECT}/repo/download", params={"commit": commit})
    assert r.status_code == 200, r.text
    files, links = {}, {}
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if member.isfile():
                files[name] = tar.extractfile(member).read()
            elif member.issym():
                links[name] = member.linkname
    return files, links


def start_notebook(plx: Server, cluster: FakeClusterThread) -> tuple[httpx.Client, list, dict]:
    client = plx.client()
    r = client.post("/api/v1/projects", json={"name": "nb"})
    assert r.status_code == 201, r.text
    r = client.post(f"{PROJECT}/notebook/start", json={})
    assert r.status_code == 201, r.text
    template = notebook_pod(cluster)
    command, env = hook_of(template)
    assert command[2] == NOTEBOOK_SNAPSHOT_SCRIPT
    assert template["spec"]["terminationGracePeriodSeconds"] >= int(command[5]) + 10
    assert env["PLX_API_URL"] == plx.url and env["PLX_TOKEN"]
    return client, command, env


def test_the_hook_uploads_the_workspace_of_a_commit_stop(plx, fake_cluster, tmp_path):
    client, command, env = start_notebook(plx, fake_cluster)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    expected = make_workspace(workspace)

    r = client.post(f"{PROJECT}/notebook/stop", json={"commit": True})
    assert r.status_code == 200 and r.json()["commit"] is None, r.text
    # The reconciler deletes the notebook's objects; the kubelet then runs the hook.
    wait_for(
        lambda: fake_cluster.run(lambda: len(fake_cluster.api.list("deployments", NAMESPACE))),
        lambda n: n == 0,
    )
    done, took = run_hook(command, env, workspace)
    assert done.returncode == 0, done.stderr
    assert "HTTP 201" in done.stderr, done.stderr
    assert took < int(command[5])

    repo = client.get(f"{PROJECT}/repo").json()
    assert repo["has_code"] and len(repo["versions"]) == 1, repo
    files, links = downloaded(client, repo["commit"])
    assert files == expected
    assert links == {"data/link.csv": "results.csv"}

    # A second run of the hook (a restarted container) stores nothing more.
    again, _ = run_hook(command, env, workspace)
    assert again.returncode == 0 and "HTTP 204" in again.stderr, again.stderr
    assert len(client.get(f"{PROJECT}/repo").json()["versions"]) == 1


def test_the_hook_of_a_stop_without_commit_stores_nothing(plx, fake_cluster, tmp_path):
    client, command, env = start_notebook(plx, fake_cluster)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    make_workspace(workspace)
    r = client.post(f"{PROJECT}/notebook/stop", json={"commit": False})
    assert r.status_code == 200, r.text
    done, _ = run_hook(command, env, workspace)
    assert done.returncode == 0 and "HTTP 204" in done.stderr, done.stderr
    assert client.get(f"{PROJECT}/repo").json()["has_code"] is False


def test_the_hook_exits_0_when_the_server_is_unreachable_or_hangs(plx, fake_cluster, tmp_path):
    _client, command, env = start_notebook(plx, fake_cluster)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    make_workspace(workspace)

    # Nobody listening: refused at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    done, took = run_hook(
        command, env, workspace, extra_env={"PLX_API_URL": f"http://127.0.0.1:{closed}"}
    )
    assert done.returncode == 0 and "snapshot failed" in done.stderr, done.stderr
    assert took < int(command[5])

    # A server that accepts and never answers: the hook gives up at its timeout, still 0.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        done, took = run_hook(
            command,
            env,
            workspace,
            timeout="2",
            extra_env={"PLX_API_URL": f"http://127.0.0.1:{port}"},
        )
    assert done.returncode == 0, done.stderr
    assert "timed out" in done.stderr, done.stderr
    assert 1.5 < took < 10

    # A missing workspace or token: nothing to do, still 0 (a failing hook would only log).
    done, _ = run_hook(command, env, tmp_path / "missing")
    assert done.returncode == 0 and "snapshot failed" in done.stderr, done.stderr
    no_token = {k: v for k, v in env.items() if k != "PLX_TOKEN"}
    done, _ = run_hook(command, no_token, workspace)
    assert done.returncode == 0 and "PLX_TOKEN" in done.stderr, done.stderr
