"""Drive the real, unmodified polyaxon-cli 0.3.9 against a real `plx server` subprocess.

The CLI is installed once with the shared script into `.cache/polyaxon-cli-venv` (kept between
runs; in CI the first run pays for the install). It keeps its state in `$HOME/.polyaxon`, so every
session gets its own HOME, and the server its own PLX_DATA_DIR and port.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import local_runs_env

REPO = Path(__file__).resolve().parents[2]
CLI_VENV = REPO / ".cache" / "polyaxon-cli-venv"
INSTALLED_MARKER = CLI_VENV / ".plx-installed"


def _install_script() -> Path:
    """PLX_CLI_INSTALL_SCRIPT, else the shared tool beside the repository."""
    if os.environ.get("PLX_CLI_INSTALL_SCRIPT"):
        return Path(os.environ["PLX_CLI_INSTALL_SCRIPT"])
    candidates = [
        REPO.parent / "shared" / "tools" / "install-polyaxon-cli.sh",
        Path("/work/shared/tools/install-polyaxon-cli.sh"),
    ]
    return next((c for c in candidates if c.exists()), candidates[0])


ADMIN = "admin"
ADMIN_PASSWORD = "admin-pass-123"


def _unavailable(reason: str) -> None:
    """Skip, except in CI, where the CLI tests must run."""
    if os.environ.get("CI"):
        pytest.fail(f"polyaxon-cli tests cannot run: {reason}")
    pytest.skip(f"polyaxon-cli 0.3.9 cannot be installed here: {reason}")


def _install_cli() -> Path:
    polyaxon = CLI_VENV / "bin" / "polyaxon"
    CLI_VENV.parent.mkdir(parents=True, exist_ok=True)
    # xdist workers share the cache: one installs, the others wait on the lock.
    with open(CLI_VENV.parent / "polyaxon-cli-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if INSTALLED_MARKER.exists() and polyaxon.exists():
            return polyaxon
        script = _install_script()
        if not script.exists():
            _unavailable(f"the install script {script} does not exist")
        shutil.rmtree(CLI_VENV, ignore_errors=True)  # a half-finished install
        result = subprocess.run(
            ["bash", str(script), str(CLI_VENV), sys.executable],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0 or not polyaxon.exists():
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            _unavailable(f"install script exited {result.returncode}: {' | '.join(tail)}")
        INSTALLED_MARKER.write_text("polyaxon-cli==0.3.9\n")
    return polyaxon


@pytest.fixture(scope="session")
def polyaxon_bin() -> Path:
    return _install_cli()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    port: int
    data_dir: Path
    log: Path
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def token(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> str:
        # Cached: a login costs a slow password hash on the server.
        if (username, password) not in self.tokens:
            r = httpx.post(
                f"{self.url}/api/v1/users/token",
                json={"username": username, "password": password},
            )
            r.raise_for_status()
            self.tokens[(username, password)] = r.json()["token"]
        return self.tokens[(username, password)]

    def api(self, method: str, path: str, *, token: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"token {token or self.token()}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kw)


def plx_command() -> list[str]:
    script = Path(sys.executable).parent / "plx"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())"]


@contextmanager
def start_server(root: Path, **extra_env: str) -> Iterator[Server]:
    """A `plx server` subprocess with its own data dir and port; `extra_env` adds PLX_* settings."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLX_", "POLYAXON_"))}
    env.update(
        PLX_DATA_DIR=str(root / "data"),
        PLX_ADMIN_USERNAME=ADMIN,
        PLX_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PLX_RUNTIME="local",
        PLX_RECONCILE_INTERVAL="0.5",
        PLX_STOP_GRACE_SECONDS="2",
    )
    env.update(local_runs_env(root / "data"))
    env.update(extra_env)
    log = root / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*plx_command(), "server", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(url=f"http://127.0.0.1:{port}", port=port, data_dir=root / "data", log=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"plx server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{server.url}/api/v1/versions/cli/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"plx server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def plx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("plx-server")) as server:
        yield server


@dataclass
class CliResult:
    args: tuple[str, ...]
    returncode: int
    output: str

    def __str__(self) -> str:
        return f"polyaxon {' '.join(self.args)} -> rc {self.returncode}\n{self.output}"


@dataclass
class Cli:
    """The polyaxon command with its own HOME (`~/.polyaxon`) and working directory."""

    binary: Path
    home: Path
    cwd: Path
    server: Server
    history: list[CliResult] = field(default_factory=list)

    def run(self, *args: str, cwd: Path | None = None, stdin: str = "") -> CliResult:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PLX_", "POLYAXON_"))}
        env.update(HOME=str(self.home), LC_ALL="C.UTF-8", LANG="C.UTF-8")
        proc = subprocess.run(
            [str(self.binary), *args],
            cwd=cwd or self.cwd,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        result = CliResult(args, proc.returncode, proc.stdout + proc.stderr)
        self.history.append(result)
        return result

    def ok(self, *args: str, cwd: Path | None = None, stdin: str = "") -> str:
        result = self.run(*args, cwd=cwd, stdin=stdin)
        assert result.returncode == 0, str(result)
        assert "Traceback" not in result.output, str(result)
        return result.output

    def state(self, name: str) -> dict[str, Any]:
        return json.loads((self.home / ".polyaxon" / name).read_text())


def make_cli(binary: Path, server: Server, root: Path) -> Cli:
    home, cwd = root / "home", root / "work"
    home.mkdir(parents=True)
    cwd.mkdir(parents=True)
    cli = Cli(binary=binary, home=home, cwd=cwd, server=server)
    cli.ok(
        "config",
        "set",
        "--host=127.0.0.1",
        f"--http_port={server.port}",
        f"--ws_port={server.port}",
        "--use_https=false",
    )
    return cli


@pytest.fixture(scope="session")
def admin_cli(
    polyaxon_bin: Path, plx_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Cli:
    """Configured and logged in as the admin created from PLX_ADMIN_*."""
    cli = make_cli(polyaxon_bin, plx_server, tmp_path_factory.mktemp("cli-admin"))
    cli.ok("login", "-u", ADMIN, "-p", ADMIN_PASSWORD)
    return cli


@pytest.fixture
def fresh_cli(polyaxon_bin: Path, plx_server: Server, tmp_path: Path) -> Cli:
    """Configured, not logged in."""
    return make_cli(polyaxon_bin, plx_server, tmp_path)
