"""Every Client method against a real plx server (SQLite and Postgres)."""

from __future__ import annotations

import io
import sys
import tarfile

import pytest
from conftest import Server, unique, wait_until

from plx_client import Client, models
from plx_client.errors import NotFound

PY = sys.executable


def grid(cmd: str, values: list[int], concurrency: int = 1, extra: str = "") -> str:
    return f"""
version: 1
kind: group
hptuning:
  concurrency: {concurrency}
  matrix: {{x: {{values: {values}}}}}
{extra}
run: {{cmd: "{cmd}"}}
"""


@pytest.fixture
def c(server: Server):
    with server.client() as client:
        yield client


@pytest.fixture
def project(c: Client) -> str:
    return c.create_project(unique("p"), description="client tests").name


def test_users_and_projects(c: Client, server: Server):
    me = c.whoami()
    assert isinstance(me, models.User) and me.username == "admin" and me.is_superuser
    name = unique("proj")
    created = c.create_project(name, description="d", tags=["a"], is_public=False)
    assert isinstance(created, models.ProjectDetail) and created.unique_name == f"admin.{name}"
    assert c.get_project(name).description == "d"
    assert c.get_project(f"admin/{name}").id == created.id
    assert c.update_project(name, description="e").description == "e"
    names = [p.name for p in c.list_projects(query=f"name:{name}")]
    assert names == [name]
    # Paging: more projects than one page, every one seen once.
    extra = [c.create_project(unique("many")).name for _ in range(5)]
    seen = [p.name for p in c._pages(models.Project, "/api/v1/admin", page_size=2)]
    assert len(seen) == len(set(seen)) and set(extra) <= set(seen)
    assert [p.name for p in c.list_projects(sort="-created_at")][0] == extra[-1]
    c.delete_project(name)
    with pytest.raises(NotFound) as err:
        c.get_project(name)
    assert err.value.detail == "Not found." and err.value.status_code == 404


def test_code_upload_and_download(c: Client, project: str, tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("print('hi')\n")
    (src / "pkg" / "m.py").write_text("X = 1\n")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    ref = c.upload_code(project, src)
    assert isinstance(ref, models.CodeReference) and ref.num_files == 2
    repo = c.get_repo(project)
    assert repo.has_code and repo.commit == ref.commit and len(repo.versions) == 1
    data = c.download_code(project, dest=tmp_path / "out.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert sorted(m.name.lstrip("./") for m in tar.getmembers() if m.isfile()) == [
            "pkg/m.py",
            "train.py",
        ]
    assert (tmp_path / "out.tar.gz").read_bytes() == data
    second = c.upload_code(project, data)  # bytes of a .tar.gz
    assert c.download_code(project, commit=ref.commit) == data
    assert c.get_repo(project).commit == second.commit


def test_experiments_statuses_metrics_logs(c: Client, project: str):
    exp = c.create_experiment(project, name="track", tags=["t"], declarations={"lr": 0.1})
    assert isinstance(exp, models.ExperimentDetail) and exp.declarations == {"lr": 0.1}
    assert exp.is_managed is False  # tracking-only: this process reports to it
    c.post_experiment_status(project, exp.id, "running")
    c.post_metrics(
        project, exp.id, [{"values": {"loss": 1.0 / (i + 1), "step": i}} for i in range(5)]
    )
    c.post_metrics(project, exp.id, {"values": {"acc": 0.5}})
    points = list(c.experiment_metrics(project, exp.id))
    assert [p.values.get("step") for p in points] == [0, 1, 2, 3, 4, None]
    assert all(isinstance(p, models.Metric) for p in points)
    series = c.metric_series(project, exp.id, names=["loss"], points=10)
    assert isinstance(series, models.ExperimentSeries) and series.series[0].name == "loss"
    assert series.series[0].x == [0, 1, 2, 3, 4] and series.series[0].y[-1] == 0.2
    got = c.get_experiment(project, exp.id)
    assert got.last_metric == {"loss": 0.2, "step": 4, "acc": 0.5} and got.last_status == "running"
    statuses = [s.status for s in c.experiment_statuses(project, exp.id)]
    assert statuses[0] == "created" and statuses[-1] == "running"
    updated = c.update_experiment(project, exp.id, declarations={"bs": 8}, merge=True)
    assert updated.declarations == {"lr": 0.1, "bs": 8}
    assert c.update_experiment(project, exp.id, description="x").description == "x"
    listed = list(c.list_experiments(project, metrics=True, declarations=True))
    assert [e.id for e in listed] == [exp.id] and listed[0].last_metric["acc"] == 0.5
    assert list(c.list_experiments(project, query="name:nomatch")) == []
    assert c.logs(project, exp.id) == ""
    c.stop_experiment(project, exp.id)
    assert c.wait(project, exp.id, timeout=30) == "stopped"
    c.delete_experiment(project, exp.id)
    with pytest.raises(NotFound):
        c.get_experiment(project, exp.id)


def test_run_logs_follow_restart_and_replicas(c: Client, project: str):
    loop = "[print('line', i, flush=True) or time.sleep(0.3) for i in range(6)]"
    cmd = f'{PY} -c "import time; {loop}"'
    config = {"version": 1, "kind": "experiment", "run": {"cmd": cmd}}
    exp = c.create_experiment(project, config)
    lines = list(c.follow_logs(project, exp.id, interval=0.2))
    assert [x for x in lines if x.startswith("line")] == [f"line {i}" for i in range(6)], lines
    assert c.get_experiment(project, exp.id).last_status == "succeeded"
    assert "line 5" in c.logs(project, exp.id)
    # The same lines over the WebSocket stream itself, by polling (no `websockets`), and a
    # typed error for an unknown run.
    assert list(c._stream_logs(project, exp.id, "experiments")) == lines
    assert list(c.follow_logs(project, exp.id, websocket=False)) == lines
    with pytest.raises(NotFound):
        list(c.follow_logs(project, 10**9))
    jobs = list(c.experiment_jobs(project, exp.id))
    assert all(isinstance(j, models.ExperimentJob) for j in jobs)
    again = c.restart_experiment(project, exp.id)
    assert again.id != exp.id and again.original.endswith(f".{exp.id}")
    assert c.wait(project, again.id, timeout=60) == "succeeded"


def test_jobs_and_builds(c: Client, project: str):
    job = c.create_job(
        project, f"version: 1\nkind: job\nbuild: {{image: x}}\nrun:\n  cmd: {PY} -c 'print(42)'\n"
    )
    assert isinstance(job, models.JobDetail)
    assert c.wait(project, job.id, kind="jobs", timeout=60) == "succeeded"
    assert "42" in c.logs(project, job.id, kind="jobs")
    assert [j.id for j in c.list_jobs(project)] == [job.id]
    assert c.get_job(project, job.id).last_status == "succeeded"
    assert [s.status for s in c.job_statuses(project, job.id)][-1] == "succeeded"
    long = c.create_job(
        project, {"version": 1, "kind": "job", "build": {"image": "x"}, "run": {"cmd": "sleep 60"}}
    )
    wait_until(lambda: c.get_job(project, long.id).last_status == "running")
    c.stop_job(project, long.id)
    assert c.wait(project, long.id, kind="jobs", timeout=60) == "stopped"
    c.delete_job(project, long.id)

    build = c.create_build(project, {"version": 1, "kind": "build", "build": {"image": "x"}})
    assert isinstance(build, models.BuildDetail)
    assert c.wait(project, build.id, kind="builds", timeout=60) in models.DONE_STATUSES
    assert build.id in [b.id for b in c.list_builds(project)]
    assert c.get_build(project, build.id).id == build.id
    assert list(c.build_statuses(project, build.id))
    c.stop_build(project, build.id)
    c.delete_build(project, build.id)


def test_groups_plan_decisions_best(c: Client, project: str, tmp_path):
    # Each experiment reports its loss through plx_client.tracking from inside the run; the
    # threshold stops the sweep once x=1 reports 0.4.
    report = "from plx_client import tracking; tracking.log_metrics(loss=0.9 - 0.5 * {{ x }})"
    extra = "  early_stopping:\n    - {metric: loss, value: 0.5, optimization: minimize}"
    content = grid(f"{PY} -c '{report}'", [0, 1, 2, 3], concurrency=1, extra=extra)
    plan = c.plan_group(project, content)
    assert isinstance(plan, models.SweepPlan) and plan.num_experiments == 4
    path = tmp_path / "sweep.yml"
    path.write_text(content)
    group = c.create_group(project, path, name="sweep", tags=["s"])
    assert isinstance(group, models.GroupDetail) and group.name == "sweep"
    assert c.wait(project, group.id, kind="groups", timeout=120) in models.DONE_STATUSES
    decisions = list(c.group_decisions(project, group.id))
    assert [d.kind for d in decisions] == ["early_stopping"]
    assert isinstance(decisions[0], models.GroupDecision)
    best = c.best_experiment(project, group.id, "loss", mode="min")
    assert best is not None and best.last_metric["loss"] == 0.4
    assert best.declarations == {"x": 1}
    worst = c.best_experiment(project, group.id, "loss", mode="max")
    assert worst is not None and worst.last_metric["loss"] == 0.9
    assert c.best_experiment(project, group.id, "nothing") is None
    points = c.group_points(project, group.id, metric="loss")
    assert isinstance(points, models.GroupPoints) and points.count == 4
    assert sorted(p.metric for p in points.results if p.metric is not None) == [0.4, 0.9]
    metrics = list(c.group_metrics(project, group.id))
    assert sorted(m.values["loss"] for m in metrics) == [0.4, 0.9]
    assert {s.status for s in c.group_statuses(project, group.id)} >= {"created", "running"}
    assert len(list(c.group_experiments(project, group.id))) == 4
    assert [g.id for g in c.list_groups(project)] == [group.id]
    assert c.get_group(project, group.id).num_experiments == 4
    assert c.update_group(project, group.id, description="dd").description == "dd"

    # From a dict, then stopped; then deleted.
    sweep = {
        "version": 1,
        "kind": "group",
        "hptuning": {"concurrency": 1, "matrix": {"x": {"values": [1, 2, 3]}}},
        "run": {"cmd": "sleep 60"},
    }
    other = c.create_group(project, sweep)
    wait_until(lambda: c.get_group(project, other.id).num_running_experiments == 1)
    c.stop_group(project, other.id)
    assert c.wait(project, other.id, kind="groups", timeout=60) == "stopped"
    c.delete_group(project, other.id)
    with pytest.raises(NotFound):
        c.get_group(project, other.id)


def test_tensorboards_and_notebooks(c: Client, project: str):
    exp = c.create_experiment(project)
    tb = c.start_tensorboard(project, experiment=exp.id)
    assert isinstance(tb, models.Tensorboard) and tb.experiment == exp.id
    assert c.start_tensorboard(project, experiment=exp.id).id == tb.id  # already running
    project_tb = c.start_tensorboard(project)
    assert {t.id for t in c.list_tensorboards(project)} == {tb.id, project_tb.id}
    c.stop_tensorboard(project, experiment=exp.id)
    c.stop_tensorboard(project)
    with pytest.raises(ValueError):
        c.start_tensorboard(project, experiment=1, group=1)
    nb = c.start_notebook(project)
    assert isinstance(nb, models.Notebook)
    assert c.get_notebook(project).id == nb.id
    stopped = c.stop_notebook(project, commit=False)
    assert stopped is None or stopped.id == nb.id


def test_logout_revokes_the_token(server: Server):
    client = Client.login(server.url, "admin", "admin-password-1", save=False)
    assert client.whoami().username == "admin"
    client.logout()
    from plx_client.errors import Unauthorized

    with pytest.raises(Unauthorized):
        client.whoami()
    client.close()
