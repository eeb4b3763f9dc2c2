"""A real `plx server` on a free port with a fresh PLX_DATA_DIR: `server()` starts one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import local_runs_env
from tests.k8s.fake_apiserver_runner import FakeClusterThread

ADMIN = ("admin", "admin-password-1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    data_dir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    log: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Server:
        self.log = self.data_dir / "server.log"
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "server", "--port", str(self.port)],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = httpx.post(
                    f"{self.url}/api/v1/users/token",
                    json={"username": ADMIN[0], "password": ADMIN[1]},
                    timeout=2,
                )
                if r.status_code == 200:
                    self.token = r.json()["token"]
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"server did not come up: {self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=10, headers={"Authorization": f"token {self.token}"}
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: `server(**env)` starts a server (PLX_* overrides as keyword arguments)."""
    started: list[Server] = []

    def _start(data_dir: Path | None = None, **overrides: Any) -> Server:
        data = data_dir or tmp_path / f"plx{len(started)}"
        data.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {
            **os.environ,
            "PLX_DATA_DIR": str(data),
            "PLX_ADMIN_USERNAME": ADMIN[0],
            "PLX_ADMIN_PASSWORD": ADMIN[1],
            "PLX_RECONCILE_INTERVAL": "0.5",
        }
        env.pop("PLX_DATABASE_URL", None)
        env.update(local_runs_env(data))
        env.update({f"PLX_{k.upper()}": str(v) for k, v in overrides.items()})
        srv = Server(data_dir=data, port=port, env=env)
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
