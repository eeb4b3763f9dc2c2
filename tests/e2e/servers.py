"""A real `plx server` subprocess on a free port, logged in as its admin: shared by the
end-to-end tests (tests/e2e) and the Python client's tests (clients/python/tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN = ("admin", "admin-password-1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data: Path) -> dict[str, str]:
    """The environment of a test server: the caller's, with `data` (created) as its data
    directory, the admin account the helpers log in with, and a quick reconcile loop."""
    data.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "PLX_DATA_DIR": str(data),
        "PLX_ADMIN_USERNAME": ADMIN[0],
        "PLX_ADMIN_PASSWORD": ADMIN[1],
        "PLX_RECONCILE_INTERVAL": "0.5",
    }


def plx_overrides(overrides: Mapping[str, Any]) -> dict[str, str]:
    """Settings given as keyword arguments (`runtime="fake"`) as PLX_* variables."""
    return {f"PLX_{k.upper()}": str(v) for k, v in overrides.items()}


def wait_for_token(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    *,
    admin: tuple[str, str] = ADMIN,
    timeout: float = 60,
) -> str:
    """The admin's token, once the server at `url` answers; RuntimeError (with the end of its
    log) when it exits first or does not come up in `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.post(
                f"{url}/api/v1/users/token",
                json={"username": admin[0], "password": admin[1]},
                timeout=2,
            )
            if r.status_code == 200:
                return r.json()["token"]
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"server did not come up: {log.read_text()[-3000:]}")


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

    def start(self, timeout: float = 60) -> Server:
        self.log = self.data_dir / "server.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "server", "--port", str(self.port)],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.token = wait_for_token(self.url, self.proc, self.log, timeout=timeout)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=10, headers={"Authorization": f"token {self.token}"}
        )
