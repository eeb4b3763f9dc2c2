"""An installed plx (a built wheel in a fresh virtualenv) runs from any directory.

This is how users and the Dockerfile install plx: no source checkout, no editable install, the
working directory an empty folder. The wheel must carry everything the server reads at run time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from tests.conftest import POSTGRES_URL, _recreate_database
from tests.e2e.servers import free_port, wait_for_token

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ADMIN = ("admin", "wheel-password-1")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("plx-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with only the wheel (and its dependencies) installed; returns its bin."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=600,
    )
    return venv / "bin"


def test_wheel_contains_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "app/migrations/env.py" in names
    assert "app/migrations/script.py.mako" in names
    revisions = {n for n in names if n.startswith("app/migrations/versions/") and n.endswith(".py")}
    in_repo = {p.name for p in (REPO / "migrations" / "versions").glob("*.py")}
    assert {Path(n).name for n in revisions} == in_repo
    assert "app/py.typed" in names
    # The built dashboard (`make ui`, which `make test` runs first) ships in the wheel.
    if (REPO / "app" / "ui_dist" / "index.html").is_file():
        assert "app/ui_dist/index.html" in names
        assert any(n.startswith("app/ui_dist/assets/") and n.endswith(".js.gz") for n in names)


def _postgres_url() -> str:
    base = make_url(POSTGRES_URL)
    name = f"{base.database or 'plx_test'}_wheel_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = base.set(database="postgres").render_as_string(hide_password=False)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _recreate_database(admin, name)).result()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
def database_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLX_", "PYTHON"))}
    # This server starts no run: its runs may stay the server's user (no run user to set up).
    env.update(
        PLX_LOCAL_RUN_USER="none",
        PLX_DATA_DIR=str(tmp_path / "data"),
        PLX_ADMIN_USERNAME=ADMIN[0],
        PLX_ADMIN_PASSWORD=ADMIN[1],
    )
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("PLX_TEST_POSTGRES_URL is not set")
        env["PLX_DATABASE_URL"] = _postgres_url()
    yield env


def test_installed_plx_upgrades_and_serves_from_an_empty_directory(
    installed: Path, database_env: dict[str, str], tmp_path: Path
) -> None:
    cwd = tmp_path / "empty"
    cwd.mkdir()
    upgrade = subprocess.run(
        [str(installed / "plx"), "db", "upgrade"],
        cwd=cwd, env=database_env, capture_output=True, text=True, timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert "latest revision" in upgrade.stdout

    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(installed / "plx"), "server", "--port", str(port)],
        cwd=cwd, env=database_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        token = wait_for_token(url, proc, tmp_path / "server.log", admin=ADMIN)
        auth = {"Authorization": f"token {token}"}
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        created = httpx.post(f"{url}/api/v1/projects", json={"name": "w"}, headers=auth, timeout=5)
        assert created.status_code == 201, created.text
        assert httpx.get(f"{url}/docs", timeout=5).status_code == 200
        if (REPO / "app" / "ui_dist" / "index.html").is_file():
            page = httpx.get(f"{url}/", timeout=5)
            assert page.status_code == 200 and '<div id="root">' in page.text
        # Nothing was written to the working directory: the server's state is under PLX_DATA_DIR.
        assert list(cwd.iterdir()) == []
    finally:
        proc.terminate()
        proc.wait(20)

