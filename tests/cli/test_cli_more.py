"""The real polyaxon-cli 0.3.9 on plx: restart/resume/copy, jobs, group stop --pending, and
tensorboards."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cli.conftest import ADMIN, Cli
from tests.cli.test_cli_runs import DONE, _wait

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def workdir(admin_cli: Cli) -> Path:
    path = admin_cli.cwd / "more"
    path.mkdir()
    admin_cli.ok("project", "create", "--name=more")
    admin_cli.ok("init", "more", cwd=path)
    return path


def _write(workdir: Path, name: str, body: str) -> str:
    (workdir / name).write_text(textwrap.dedent(body))
    return name


def _cached(workdir: Path, name: str) -> int:
    return json.loads((workdir / ".polyaxon" / name).read_text())["id"]


def test_restart_resume_copy(admin_cli: Cli, workdir: Path):
    spec = _write(
        workdir,
        "exp.yml",
        f"""\
        version: 1
        kind: experiment
        declarations:
          word: hello
        run:
          cmd: {sys.executable} -c "print('{{{{ word }}}}')"
        """,
    )
    admin_cli.ok("run", "-f", spec, "--name=orig", cwd=workdir)
    xp = _cached(workdir, ".polyaxonxp")
    base = f"/api/v1/{ADMIN}/more/experiments"
    _wait(admin_cli, f"{base}/{xp}", lambda b: b["last_status"] in DONE)
    before = {e["id"] for e in admin_cli.server.api("GET", base).json()["results"]}

    for args in (("restart",), ("restart", "--copy"), ("resume",)):
        out = admin_cli.ok("experiment", "-xp", str(xp), *args, cwd=workdir)
        assert "was restarted" in out or "was resumed" in out or "was copied" in out, out
    after = admin_cli.server.api("GET", base).json()["results"]
    new = [e for e in after if e["id"] not in before]
    assert len(new) == 3, after
    for experiment in new:
        body = _wait(admin_cli, f"{base}/{experiment['id']}", lambda b: b["last_status"] in DONE)
        assert body["last_status"] == "succeeded", body
        assert body["original"] == f"{ADMIN}.more.{xp}"

    # List flags are sent as `metrics=True` / `declarations=True` / `independent=True`.
    out = admin_cli.ok("project", "experiments", "-m", cwd=workdir)
    assert f"{ADMIN}.more.{xp}" in out
    out = admin_cli.ok("project", "experiments", "-d", cwd=workdir)
    assert "hello" in out
    out = admin_cli.ok("project", "experiments", "-i", "-q", "status:succeeded", cwd=workdir)
    assert out.count(f"{ADMIN}.more.") == 4, out
    out = admin_cli.ok("experiment", "-xp", str(xp), "jobs", cwd=workdir)
    assert "master" in out or "Jobs for experiment" in out, out


def test_job_run_get_statuses_logs(admin_cli: Cli, workdir: Path):
    spec = _write(
        workdir,
        "job.yml",
        f"""\
        version: 1
        kind: job
        build:
          image: python:3.11-slim
        run:
          cmd: {sys.executable} -c "print('job says hi')"
        """,
    )
    out = admin_cli.ok("run", "-f", spec, "--name=job-one", cwd=workdir)
    assert "was created" in out, out
    job = _cached(workdir, ".polyaxonjob")
    body = _wait(admin_cli, f"/api/v1/{ADMIN}/more/jobs/{job}", lambda b: b["last_status"] in DONE)
    assert body["last_status"] == "succeeded", body
    assert "job-one" in admin_cli.ok("job", "-j", str(job), "get", cwd=workdir)
    assert "succeeded" in admin_cli.ok("job", "-j", str(job), "statuses", cwd=workdir)
    assert "job says hi" in admin_cli.ok("job", "-j", str(job), "logs", "--past", cwd=workdir)
    admin_cli.ok("job", "-j", str(job), "bookmark", cwd=workdir)
    assert f"{ADMIN}.more.jobs.{job}" in admin_cli.ok("bookmark", "jobs")


def test_group_stop_pending_and_stop(admin_cli: Cli, workdir: Path):
    spec = _write(
        workdir,
        "slow-group.yml",
        """\
        version: 1
        kind: group
        hptuning:
          concurrency: 1
          matrix:
            seconds:
              values: [60, 61, 62]
        run:
          cmd: sleep {{ seconds }}
        """,
    )
    admin_cli.ok("run", "-f", spec, "--name=slow", cwd=workdir)
    group = _cached(workdir, ".polyaxongroup")
    path = f"/api/v1/{ADMIN}/more/groups/{group}"
    _wait(admin_cli, path, lambda b: b["num_running_experiments"] >= 1)
    admin_cli.ok("group", "-g", str(group), "stop", "-y", "--pending", cwd=workdir)
    body = _wait(admin_cli, path, lambda b: b["num_stopped_experiments"] >= 1)
    assert body["num_running_experiments"] == 1, body
    admin_cli.ok("group", "-g", str(group), "stop", "-y", cwd=workdir)
    body = _wait(admin_cli, path, lambda b: b["last_status"] in DONE)
    assert body["last_status"] == "stopped", body


def test_tensorboard_start_twice_and_stop(admin_cli: Cli, workdir: Path):
    out = admin_cli.ok("tensorboard", "start", cwd=workdir)
    assert "being deployed" in out, out
    out = admin_cli.ok("tensorboard", "start", cwd=workdir)
    assert "being deployed" in out or "already running" in out, out
    rows = admin_cli.server.api("GET", f"/api/v1/{ADMIN}/more/tensorboards").json()
    assert rows["count"] >= 1
    admin_cli.ok("tensorboard", "stop", "-y", cwd=workdir)


def test_build_run_get_statuses_logs(admin_cli: Cli, workdir: Path):
    spec = _write(
        workdir,
        "build.yml",
        """\
        version: 1
        kind: build
        build:
          image: python:3.11-slim
          build_steps: [pip install requests]
        """,
    )
    out = admin_cli.ok("run", "-f", spec, "--name=build-one", cwd=workdir)
    assert "was created" in out, out
    build = _cached(workdir, ".polyaxonbuild")
    body = _wait(
        admin_cli, f"/api/v1/{ADMIN}/more/builds/{build}", lambda b: b["last_status"] is not None
    )
    assert "build-one" in admin_cli.ok("build", "-b", str(build), "get", cwd=workdir)
    out = admin_cli.ok("build", "-b", str(build), "statuses", cwd=workdir)
    assert body["last_status"] in out
    # (`build logs --past` is left out: a local build writes no log, so it answers 404 as v0 did
    # for a missing log file, and the CLI exits 1.)
    admin_cli.ok("build", "-b", str(build), "bookmark", cwd=workdir)
    assert f"{ADMIN}.more.builds.{build}" in admin_cli.ok("bookmark", "builds")


def test_notebook_start_with_no_file_and_stop(admin_cli: Cli, workdir: Path):
    # Without -f the CLI posts `{}`: the server picks a default notebook config.
    out = admin_cli.ok("notebook", "start", cwd=workdir)
    assert "being deployed" in out or "already running" in out, out
    admin_cli.ok("notebook", "stop", "-y", "--commit=false", cwd=workdir)
