"""What the real polyaxon-cli 0.3.9 does with the versions `PLX_CLI_MIN_VERSION` and
`PLX_CLI_LATEST_VERSION` make `GET /versions/cli/` announce.

Every command but config, version, login and logout first runs the CLI's `check_cli_version`: a
CLI older than `min_version` says it is no longer compatible, asks whether to upgrade (always
answered "n" here: "y" would pip-install into the cached venv) and exits 0 without running the
command; one older than `latest_version` prints a hint and goes on.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import REPO, Cli, CliResult, Server, make_cli, plx_command, start_server

NOT_COMPATIBLE = "Your version of CLI (0.3.9) is no longer compatible with server."
NEW_VERSION_HINT = "New version of CLI"
PIP_UPGRADE = "pip install -U polyaxon-cli"
DECLINE_UPGRADE = "n\n"


@pytest.fixture(scope="module")
def server_requiring_newer_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("plx-server-min-0.4.0")
    with start_server(root, PLX_CLI_MIN_VERSION="0.4.0") as server:
        yield server


@pytest.fixture(scope="module")
def server_announcing_newer_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("plx-server-latest-0.4.1")
    with start_server(root, PLX_CLI_LATEST_VERSION="0.4.1") as server:
        yield server


def _logged_in_cli(binary: Path, server: Server, root: Path) -> Cli:
    cli = make_cli(binary, server, root)
    cli.ok("login", "--token", server.token())  # login itself never checks the version
    return cli


def _project_list(cli: Cli) -> CliResult:
    return cli.run("project", "list", stdin=DECLINE_UPGRADE)


def test_cli_older_than_the_minimum_is_told_to_upgrade(
    polyaxon_bin: Path, server_requiring_newer_cli: Server, tmp_path: Path
):
    server = server_requiring_newer_cli
    server.api("POST", "/api/v1/projects/", json={"name": "hidden-by-the-check"}).raise_for_status()
    cli = _logged_in_cli(polyaxon_bin, server, tmp_path)
    # The minimum cached at login is above 0.3.9, so the very next command checks.
    assert cli.state(".polyaxoncli")["min_version"] == "0.4.0"

    result = _project_list(cli)

    assert NOT_COMPATIBLE in result.output, str(result)
    assert "Do you want to upgrade to version 0.4.0 now?" in result.output, str(result)
    assert PIP_UPGRADE in result.output, str(result)
    assert "to upgrade to the latest version `0.4.0`" in result.output, str(result)
    # It stops there (exit 0, as the CLI does after declining): the command never runs.
    assert result.returncode == 0 and "hidden-by-the-check" not in result.output, str(result)
    assert "Traceback" not in result.output, str(result)


def test_cli_older_than_the_minimum_is_told_before_logging_in(
    polyaxon_bin: Path, server_requiring_newer_cli: Server, tmp_path: Path
):
    # No cached versions yet: the check runs, and versions/cli answers without a token.
    cli = make_cli(polyaxon_bin, server_requiring_newer_cli, tmp_path)
    result = cli.run("whoami", stdin=DECLINE_UPGRADE)
    assert NOT_COMPATIBLE in result.output and PIP_UPGRADE in result.output, str(result)
    assert "Please login first" not in result.output, str(result)


def test_version_command_shows_the_minimum_and_an_unchanged_platform(
    polyaxon_bin: Path, server_requiring_newer_cli: Server, tmp_path: Path
):
    cli = make_cli(polyaxon_bin, server_requiring_newer_cli, tmp_path)
    out = cli.ok("version", "--cli")
    assert "Current cli version: 0.3.9" in out
    assert re.search(r"min_version\s+0\.4\.0", out) and re.search(r"latest_version\s+0\.4\.0", out)
    # The platform (and its chart) is the server's own version, whatever the CLI settings.
    out = cli.ok("version", "--platform")
    assert "Current platform version: 0.3.9" in out
    assert re.search(r"min_version\s+0\.3\.0", out) and re.search(r"latest_version\s+0\.3\.9", out)


def test_cli_at_the_default_minimum_is_not_told_to_upgrade(
    polyaxon_bin: Path, plx_server: Server, tmp_path: Path
):
    server = plx_server
    server.api("POST", "/api/v1/projects/", json={"name": "listed-after-the-check"})
    cli = _logged_in_cli(polyaxon_bin, server, tmp_path)
    # The first 3 commands after login skip the check; the 4th runs it against the server.
    for _ in range(4):
        result = _project_list(cli)
        assert result.returncode == 0, str(result)
        assert NOT_COMPATIBLE not in result.output and PIP_UPGRADE not in result.output, str(result)
        assert NEW_VERSION_HINT not in result.output, str(result)
        assert "listed-after-the-check" in result.output, str(result)
    assert cli.state(".polyaxoncli")["check_count"] > 3
    assert cli.state(".polyaxoncli")["min_version"] == "0.3.0"


def test_newer_latest_version_prints_a_hint_and_runs_the_command(
    polyaxon_bin: Path, server_announcing_newer_cli: Server, tmp_path: Path
):
    server = server_announcing_newer_cli
    server.api("POST", "/api/v1/projects/", json={"name": "listed-after-the-hint"})
    cli = _logged_in_cli(polyaxon_bin, server, tmp_path)
    # Without cached versions (as right after installing the CLI) the next command checks.
    (cli.home / ".polyaxon" / ".polyaxoncli").unlink()
    result = _project_list(cli)
    assert result.returncode == 0, str(result)
    assert "New version of CLI (0.4.1) is now available" in result.output, str(result)
    assert NOT_COMPATIBLE not in result.output, str(result)
    assert "listed-after-the-hint" in result.output, str(result)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PLX_CLI_MIN_VERSION", "latest", "PLX_CLI_MIN_VERSION must be a version like 0.3.9"),
        ("PLX_CLI_LATEST_VERSION", "0.4.x", "PLX_CLI_LATEST_VERSION must be a version like 0.3.9"),
    ],
)
def test_server_refuses_to_start_with_a_bad_version(
    variable: str, value: str, message: str, tmp_path: Path
):
    result = subprocess.run(
        [*plx_command(), "server", "--port", "1"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PLX_DATA_DIR": str(tmp_path / "data"), variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
