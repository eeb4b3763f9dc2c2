"""A real `plx server` on a free port with a fresh PLX_DATA_DIR: `server()` starts one
(tests/e2e/servers.py; ADMIN, Server and free_port are imported from here by the tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import local_runs_env
from tests.e2e.servers import ADMIN as ADMIN  # the tests import it from here
from tests.e2e.servers import Server, free_port, plx_overrides, server_env
from tests.k8s.fake_apiserver_runner import FakeClusterThread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: `server(**env)` starts a server (PLX_* overrides as keyword arguments)."""
    started: list[Server] = []

    def _start(data_dir: Path | None = None, **overrides: Any) -> Server:
        data = data_dir or tmp_path / f"plx{len(started)}"
        env = server_env(data)
        env.pop("PLX_DATABASE_URL", None)
        env.update(local_runs_env(data))
        env.update(plx_overrides(overrides))
        srv = Server(data_dir=data, port=free_port(), env=env)
        started.append(srv)
        return srv.start()

    yield _start
    for srv in started:
        srv.stop()


# The namespace of the fake cluster the Kubernetes end-to-end tests run on.
K8S_NAMESPACE = "plx"


@pytest.fixture
def fake_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClusterThread]:
    """A fake Kubernetes cluster in a thread, and KUBECONFIG pointing at it (namespace
    K8S_NAMESPACE) for the servers the test starts."""
    cluster = FakeClusterThread(step=0.01, run_seconds=0.1)
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", K8S_NAMESPACE)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("PLX_K8S_API_HOST", raising=False)
    yield cluster
    cluster.close()
