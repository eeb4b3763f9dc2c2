"""The real polyaxon-cli 0.3.9 running code on plx: upload, `run -f` for an experiment and a
group, get, statuses, past logs, stop, bookmarks, and polyaxon-client tracking inside a run."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import ADMIN, Cli

pytestmark = pytest.mark.e2e

DONE = {"succeeded", "failed", "stopped"}

MODEL = """\
import sys
for step in range(int(sys.argv[1])):
    print(f"step {step} of model.py", flush=True)
"""


def _wait(cli: Cli, path: str, until: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = cli.server.api("GET", path).json()
        if until(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out on {path}: {body}\n{cli.server.log.read_text()[-2000:]}"
            )
        time.sleep(0.3)


@pytest.fixture(scope="module")
def project_dir(admin_cli: Cli) -> Path:
    """A project with uploaded code, initialised in its own directory."""
    workdir = admin_cli.cwd / "mnist"
    workdir.mkdir()
    (workdir / "model.py").write_text(MODEL)
    (workdir / "ignored.log").write_text("not uploaded\n")
    admin_cli.ok("project", "create", "--name=mnist")
    admin_cli.ok("init", "mnist", cwd=workdir)
    (workdir / ".polyaxonignore").write_text("*.log\n")  # init wrote a default one
    out = admin_cli.ok("upload", cwd=workdir)
    assert "Files uploaded" in out, out
    return workdir


def _experiment_file(workdir: Path, name: str, cmd: str) -> str:
    body = textwrap.dedent(
        f"""\
        version: 1
        kind: experiment
        declarations:
          steps: 3
        build:
          image: python:3.11-slim
        run:
          cmd: {cmd}
        """
    )
    (workdir / name).write_text(body)
    return name


def test_upload_stores_the_code(admin_cli: Cli, project_dir: Path):
    r = admin_cli.server.api("GET", f"/api/v1/{ADMIN}/mnist")
    assert r.json()["has_code"] is True


def test_run_experiment_get_statuses_logs(admin_cli: Cli, project_dir: Path):
    # An absolute path: this test is about the CLI, `test_runs_start_in_the_uploaded_code` about
    # the working directory.
    cmd = f"{sys.executable} {project_dir / 'model.py'} {{{{ steps }}}}"
    spec = _experiment_file(project_dir, "exp.yml", cmd)
    out = admin_cli.ok(
        "run", "-f", spec, "--name=exp-one", "--description=first", "--tags=x,y", cwd=project_dir
    )
    assert "was created" in out, out
    cached = json.loads((project_dir / ".polyaxon" / ".polyaxonxp").read_text())
    xp = cached["id"]
    path = f"/api/v1/{ADMIN}/mnist/experiments/{xp}"
    body = _wait(admin_cli, path, lambda b: b["last_status"] in DONE)
    assert body["last_status"] == "succeeded", body
    assert body["name"] == "exp-one" and body["tags"] == ["x", "y"]
    assert body["declarations"] == {"steps": 3}

    out = admin_cli.ok("experiment", "-xp", str(xp), "get", cwd=project_dir)
    assert "exp-one" in out and "succeeded" in out
    out = admin_cli.ok("experiment", "-xp", str(xp), "statuses", cwd=project_dir)
    assert "running" in out and "succeeded" in out
    out = admin_cli.ok("experiment", "-xp", str(xp), "logs", "--past", cwd=project_dir)
    assert "step 2 of model.py" in out
    out = admin_cli.ok("project", "experiments", cwd=project_dir)
    assert f"admin.mnist.{xp}" in out

    admin_cli.ok("experiment", "-xp", str(xp), "bookmark", cwd=project_dir)
    out = admin_cli.ok("bookmark", "experiments")
    assert f"admin.mnist.{xp}" in out


def test_runs_start_in_the_uploaded_code(admin_cli: Cli, project_dir: Path):
    spec = _experiment_file(project_dir, "relative.yml", f"{sys.executable} model.py 2")
    admin_cli.ok("run", "-f", spec, "--name=relative", cwd=project_dir)
    xp = json.loads((project_dir / ".polyaxon" / ".polyaxonxp").read_text())["id"]
    path = f"/api/v1/{ADMIN}/mnist/experiments/{xp}"
    body = _wait(admin_cli, path, lambda b: b["last_status"] in DONE)
    logs = admin_cli.server.api("GET", path + "/logs").text
    assert body["last_status"] == "succeeded", logs
    assert "step 1 of model.py" in logs


def test_stop_a_running_experiment(admin_cli: Cli, project_dir: Path):
    spec = _experiment_file(project_dir, "long.yml", "sleep 120")
    admin_cli.ok("run", "-f", spec, "--name=long-one", cwd=project_dir)
    xp = json.loads((project_dir / ".polyaxon" / ".polyaxonxp").read_text())["id"]
    path = f"/api/v1/{ADMIN}/mnist/experiments/{xp}"
    _wait(admin_cli, path, lambda b: b["last_status"] == "running")
    admin_cli.ok("experiment", "-xp", str(xp), "stop", "-y", cwd=project_dir)
    body = _wait(admin_cli, path, lambda b: b["last_status"] in DONE)
    assert body["last_status"] == "stopped"


@pytest.fixture(scope="module")
def tracked_run(admin_cli: Cli, project_dir: Path) -> tuple[dict[str, Any], str]:
    """A run using the official polyaxon-client (from the CLI venv), configured only by the
    POLYAXON_* variables plx gives every run. Returns the finished experiment and its logs."""
    tracker = project_dir / "track.py"
    tracker.write_text(
        textwrap.dedent(
            """\
            import logging, sys, time
            logging.basicConfig(level=logging.INFO, stream=sys.stdout)
            from polyaxon_client.tracking import Experiment
            experiment = Experiment()
            for step in range(3):
                experiment.log_metrics(step=step, loss=1.0 / (step + 1))
            experiment.log_tags(["tracked"])
            experiment.log_params(batch=32)
            time.sleep(2.5)  # the client sends metrics from a 1 s background worker
            """
        )
    )
    python = admin_cli.binary.parent / "python"
    spec = _experiment_file(project_dir, "track.yml", f"{python} {tracker}")
    admin_cli.ok("run", "-f", spec, "--name=tracked", cwd=project_dir)
    xp = json.loads((project_dir / ".polyaxon" / ".polyaxonxp").read_text())["id"]
    path = f"/api/v1/{ADMIN}/mnist/experiments/{xp}"
    body = _wait(admin_cli, path, lambda b: b["last_status"] in DONE)
    return body, admin_cli.server.api("GET", path + "/logs").text


def test_tracking_client_inside_a_run_logs_metrics(admin_cli: Cli, tracked_run):
    body, logs = tracked_run
    assert body["last_status"] == "succeeded", logs
    path = f"/api/v1/{ADMIN}/mnist/experiments/{body['id']}/metrics"
    metrics = admin_cli.server.api("GET", path).json()["results"]
    assert [m["values"]["step"] for m in metrics] == [0, 1, 2], logs
    assert body["last_metric"]["loss"] == pytest.approx(1 / 3)


def test_tracking_client_inside_a_run_patches_its_experiment(tracked_run):
    body, logs = tracked_run
    assert "tracked" in (body["tags"] or []), logs
    assert (body["declarations"] or {}).get("batch") == 32, logs


GROUP = """\
version: 1
kind: group
hptuning:
  concurrency: 2
  matrix:
    steps:
      values: [1, 2, 3]
declarations:
  unused: 1
build:
  image: python:3.11-slim
run:
  cmd: {python} {model} {{{{ steps }}}}
"""


def test_run_group_experiments_statuses(admin_cli: Cli, project_dir: Path):
    (project_dir / "group.yml").write_text(
        GROUP.format(python=sys.executable, model=project_dir / "model.py")
    )
    out = admin_cli.ok("run", "-f", "group.yml", "--name=grp-one", cwd=project_dir)
    assert "was created" in out, out
    group = json.loads((project_dir / ".polyaxon" / ".polyaxongroup").read_text())["id"]
    path = f"/api/v1/{ADMIN}/mnist/groups/{group}"
    body = _wait(admin_cli, path, lambda b: b["last_status"] in DONE, timeout=90)
    assert body["last_status"] == "succeeded", body
    assert body["concurrency"] == 2 and body["num_succeeded_experiments"] == 3

    out = admin_cli.ok("group", "-g", str(group), "get", cwd=project_dir)
    assert "grp-one" in out
    out = admin_cli.ok("group", "-g", str(group), "experiments", cwd=project_dir)
    assert out.count(f"admin.mnist.{group}.") == 3, out
    out = admin_cli.ok("group", "-g", str(group), "statuses", cwd=project_dir)
    assert "succeeded" in out
    admin_cli.ok("group", "-g", str(group), "bookmark", cwd=project_dir)
    assert f"admin.mnist.{group}" in admin_cli.ok("bookmark", "groups")
