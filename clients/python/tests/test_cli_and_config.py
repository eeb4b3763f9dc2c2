"""`python -m plx_client login|whoami`, the config file, and the generated sync client."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from conftest import ADMIN, Server

from plx_client import Client


def _cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plx_client", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_login_then_whoami(server: Server, tmp_path: Path):
    config = tmp_path / "cfg" / "client.json"
    env = {"PATH": os.environ["PATH"], "PLX_CONFIG": str(config), "HOME": str(tmp_path)}
    out = _cli("login", "--url", server.url, "-u", ADMIN[0], env=env, stdin=ADMIN[1] + "\n")
    assert out.returncode == 0, out.stderr
    saved = json.loads(config.read_text())
    assert saved["url"] == server.url and saved["username"] == ADMIN[0] and saved["token"]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # a credential
    out = _cli("whoami", env=env)
    assert out.returncode == 0 and out.stdout.startswith(f"{ADMIN[0]} on {server.url}")
    # The Client finds url and token in the file; PLX_* win over it.
    os.environ["PLX_CONFIG"] = str(config)
    with Client() as c:
        assert c.url == server.url and c.whoami().username == ADMIN[0]
    bad = _cli("login", "--url", server.url, "-u", ADMIN[0], "-p", "wrong", env=env)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ")
    env["PLX_TOKEN"] = "nope"
    out = _cli("whoami", env=env)
    assert out.returncode == 1 and "error:" in out.stderr


def test_sync_client_is_generated_from_the_async_one():
    tools = Path(__file__).resolve().parents[1] / "tools"
    sys.path.insert(0, str(tools))
    try:
        import unasync
    finally:
        sys.path.remove(str(tools))
    assert unasync.TARGET.read_text() == unasync.render(), "run tools/unasync.py"
