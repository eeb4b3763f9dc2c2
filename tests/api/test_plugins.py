"""Tensorboards and notebooks: API start/stop answers, and the reconciler step on a fake runtime."""

from __future__ import annotations

from sqlalchemy import select

from app.db import session_scope
from app.models import Experiment, ExperimentGroup, NotebookJob, Project
from app.reconciler.loop import Reconciler
from app.reconciler.plugins import reconcile_plugins
from app.runtimes.fake import FakeRuntime
from app.services.statuses import set_status
from tests.api.test_code import upload, v0_tarball

BASE = "/api/v1/alice/foo"


async def _project(client, owner) -> int:
    r = await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    assert r.status_code == 201
    return r.json()["id"]


def _reconciler(app, settings, runtime=None) -> Reconciler:
    return Reconciler(
        settings, app.state.sessionmaker, runtime or FakeRuntime(), steps=[reconcile_plugins]
    )


async def _experiment(
    app, owner, project_id: int, *, group: bool = False
) -> tuple[int, int | None]:
    async with session_scope(app.state.sessionmaker) as session:
        group_id = None
        if group:
            row = ExperimentGroup(user_id=owner.id, project_id=project_id, content="{}")
            session.add(row)
            await session.flush()
            group_id = row.id
        exp = Experiment(user_id=owner.id, project_id=project_id, experiment_group_id=group_id)
        session.add(exp)
        await session.flush()
        assert await set_status(session, exp, "created")
        return exp.id, group_id


async def test_project_tensorboard_start_is_idempotent_then_stop(app, client, owner, settings):
    await _project(client, owner)
    runtime = FakeRuntime()
    reconciler = _reconciler(app, settings, runtime)

    r = await client.post(f"{BASE}/tensorboard/start", headers=owner.headers)
    assert r.status_code == 201, r.text
    board = r.json()
    assert board["last_status"] == "created" and board["url"] is None
    assert board["experiment"] is None and board["experiment_group"] is None
    assert board["unique_name"] == f"alice.foo.tensorboards.{board['id']}"

    r = await client.post(f"{BASE}/tensorboard/start/", headers=owner.headers)
    assert r.status_code == 200 and r.json()["id"] == board["id"]

    await reconciler.reconcile_once()
    (key,) = runtime.starts
    assert runtime.starts[key] == 1 and key.startswith("tensorboard-")
    spec = runtime.specs[key]
    assert "--port" in spec.command and spec.ports
    await reconciler.reconcile_once()  # converged: nothing started twice
    assert runtime.starts[key] == 1

    r = await client.get(f"{BASE}/tensorboards", headers=owner.headers)
    page = r.json()
    assert page["count"] == 1
    listed = page["results"][0]
    assert listed["last_status"] == "running"
    # Served through plx's proxy (the workload's own address stays internal), with a ticket.
    assert listed["url"].startswith("http://testserver/tensorboard/alice/foo/?plx_ticket=")
    assert (await client.get(BASE, headers=owner.headers)).json()["has_tensorboard"] is True

    r = await client.post(f"{BASE}/tensorboard/stop", headers=owner.headers)
    assert r.status_code == 200 and r.json()["last_status"] == "stopped"
    assert (await client.get(BASE, headers=owner.headers)).json()["has_tensorboard"] is False
    await reconciler.reconcile_once()
    assert runtime.stop_requests and runtime.stop_requests[0][0] == key
    assert key not in await runtime.list_workloads()

    r = await client.post(f"{BASE}/tensorboard/start", headers=owner.headers)
    assert r.status_code == 201 and r.json()["id"] != board["id"]


async def test_group_and_experiment_tensorboards(app, client, owner, settings):
    project_id = await _project(client, owner)
    exp_id, _ = await _experiment(app, owner, project_id)
    member_id, group_id = await _experiment(app, owner, project_id, group=True)
    runtime = FakeRuntime()
    reconciler = _reconciler(app, settings, runtime)

    r = await client.post(f"{BASE}/experiments/{exp_id}/tensorboard/start", headers=owner.headers)
    assert r.status_code == 201 and r.json()["experiment"] == exp_id
    r = await client.post(f"{BASE}/groups/{group_id}/tensorboard/start", headers=owner.headers)
    assert r.status_code == 201 and r.json()["experiment_group"] == group_id
    r = await client.post(f"{BASE}/groups/999/tensorboard/start", headers=owner.headers)
    assert r.status_code == 404
    await reconciler.reconcile_once()
    assert len(runtime.starts) == 2
    for path in (f"{BASE}/experiments/{exp_id}", f"{BASE}/groups/{group_id}"):
        assert (await client.get(path, headers=owner.headers)).json()["has_tensorboard"] is True
    member = await client.get(f"{BASE}/experiments/{member_id}", headers=owner.headers)
    assert member.json()["has_tensorboard"] is False  # the group's board is not the member's
    commands = sorted(spec.command for spec in runtime.specs.values())
    assert any(f"/runs/experiment/{exp_id}/outputs" in c for c in commands)
    assert any(f"/runs/experiment/{member_id}/outputs" in c for c in commands)
    assert not any(f"{exp_id}/outputs" in c and f"{member_id}/outputs" in c for c in commands)

    # Stopping the experiment stops its tensorboard; deleting the group's row ends the other.
    async with session_scope(app.state.sessionmaker) as session:
        exp = await session.get(Experiment, exp_id)
        assert await set_status(session, exp, "stopped")
        await session.delete(await session.get(ExperimentGroup, group_id))
    await reconciler.reconcile_once()
    assert await runtime.list_workloads() == {}
    r = await client.get(f"{BASE}/tensorboards", headers=owner.headers)
    assert [b["last_status"] for b in r.json()["results"]] == ["stopped"]


async def test_deleting_the_project_stops_its_plugins(app, client, owner, settings):
    await _project(client, owner)
    runtime = FakeRuntime()
    reconciler = _reconciler(app, settings, runtime)
    await client.post(f"{BASE}/tensorboard/start", headers=owner.headers)
    await client.post(f"{BASE}/notebook/start", headers=owner.headers)
    await reconciler.reconcile_once()
    assert runtime.running_count() == 2
    r = await client.delete(BASE, headers=owner.headers)
    assert r.status_code == 204
    await reconciler.reconcile_once()
    assert runtime.running_count() == 0 and await runtime.list_workloads() == {}


async def test_permissions(client, owner, other):
    await _project(client, owner)
    r = await client.post(f"{BASE}/tensorboard/start", headers=other.headers)
    assert r.status_code == 403
    r = await client.post(f"{BASE}/notebook/start", headers=other.headers)
    assert r.status_code == 403
    r = await client.get(f"{BASE}/tensorboards", headers=other.headers)
    assert r.status_code == 200


async def test_notebook_start_and_stop_with_commit(app, client, owner, other, settings):
    project_id = await _project(client, owner)
    first = (await upload(client, owner, v0_tarball({"train.py": b"v1"}))).json()
    runtime = FakeRuntime()
    reconciler = _reconciler(app, settings, runtime)

    r = await client.post(f"{BASE}/notebook/start", json={"config": {}}, headers=owner.headers)
    assert r.status_code == 201, r.text
    r = await client.post(f"{BASE}/notebook/start", headers=owner.headers)
    assert r.status_code == 200
    await reconciler.reconcile_once()
    (spec,) = runtime.specs.values()
    workdir = spec.workdir
    assert workdir in spec.command and "--ServerApp.base_url=/notebook/alice/foo/" in spec.command
    async with session_scope(app.state.sessionmaker) as session:
        token = (await session.scalars(select(NotebookJob.token))).one()

    detail = (await client.get(BASE, headers=owner.headers)).json()
    assert detail["has_notebook"] is True
    nb = (await client.get(f"{BASE}/notebook", headers=owner.headers)).json()
    assert token not in nb["url"] and token not in spec.command
    assert spec.env["JUPYTER_TOKEN"] == token
    assert nb["url"].startswith("http://testserver/notebook/alice/foo/?plx_ticket=")
    assert (await client.get(f"{BASE}/notebook", headers=other.headers)).json()["url"] is None

    r = await upload(client, owner, v0_tarball({"train.py": b"v2"}))
    assert r.status_code == 403

    # The notebook works on a writable copy of the project's code.
    from pathlib import Path

    work = Path(workdir)
    assert (work / "train.py").read_bytes() == b"v1"
    (work / "train.py").write_bytes(b"edited in the notebook")
    (work / "analysis.ipynb").write_text("{}")
    (work / ".ipynb_checkpoints").mkdir()
    (work / ".ipynb_checkpoints" / "x.ipynb").write_text("{}")

    r = await client.post(f"{BASE}/notebook/stop", json={"commit": True}, headers=owner.headers)
    assert r.status_code == 200, r.text
    stopped = r.json()
    assert stopped["last_status"] == "stopped" and stopped["commit"] not in (None, first["commit"])
    repo = (await client.get(f"{BASE}/repo", headers=owner.headers)).json()
    assert repo["commit"] == stopped["commit"] and len(repo["versions"]) == 2
    from app.services.code import code_checkout_path

    tree = await code_checkout_path(settings, project_id, stopped["commit"])
    assert (tree / "train.py").read_bytes() == b"edited in the notebook"
    assert (tree / "analysis.ipynb").exists() and not (tree / ".ipynb_checkpoints").exists()

    await reconciler.reconcile_once()
    assert runtime.running_count() == 0
    assert (await upload(client, owner, v0_tarball({"train.py": b"v3"}))).status_code == 200


async def test_notebook_stop_without_commit_keeps_the_code(app, client, owner, settings):
    await _project(client, owner)
    first = (await upload(client, owner, v0_tarball({"train.py": b"v1"}))).json()
    reconciler = _reconciler(app, settings)
    await client.post(f"{BASE}/notebook/start", headers=owner.headers)
    await reconciler.reconcile_once()
    r = await client.post(f"{BASE}/notebook/stop", json={"commit": False}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["commit"] is None
    repo = (await client.get(f"{BASE}/repo", headers=owner.headers)).json()
    assert repo["commit"] == first["commit"] and len(repo["versions"]) == 1


async def test_missing_program_fails_with_the_extra_to_install(
    app, client, owner, settings, monkeypatch, tmp_path
):
    from app.runtimes.local import LocalRuntime
    from app.services import plugins

    await _project(client, owner)
    monkeypatch.setattr(
        plugins,
        "EXTRAS",
        {**plugins.EXTRAS, "tensorboard": ("no-such-tb", "pip install 'plx[tensorboard]'")},
    )
    runtime = LocalRuntime(state_dir=tmp_path / "rt", max_parallel=2)
    reconciler = _reconciler(app, settings, runtime)
    await client.post(f"{BASE}/tensorboard/start", headers=owner.headers)
    await reconciler.reconcile_once()
    board = (await client.get(f"{BASE}/tensorboards", headers=owner.headers)).json()["results"][0]
    assert board["last_status"] == "failed"
    async with session_scope(app.state.sessionmaker) as session:
        project = (await session.scalars(select(Project))).one()
        from app.models import TensorboardJobStatus

        messages = list(await session.scalars(select(TensorboardJobStatus.message)))
    assert project.id and any("pip install 'plx[tensorboard]'" in (m or "") for m in messages)
    assert await runtime.list_workloads() == {}
