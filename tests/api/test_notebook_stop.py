"""A notebook stop always stops (issue 15 item 3): saving its work is best effort beside it. An
empty or unchanged workspace stores no version and is no error; a failure to save shows in the
answer and the status message, never as a refused stop. Local runtime (the work is saved by the
stop) and Kubernetes (by the upload of the pod's preStop hook), on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.db import session_scope
from app.models import CodeReference, NotebookJob
from app.reconciler.loop import Reconciler
from app.reconciler.plugins import reconcile_plugins
from app.runtimes.fake import FakeRuntime
from app.services import plugins as service
from tests.api.test_code import upload, v0_tarball
from tests.api.test_notebook_snapshot import _run_headers, _snapshot, workspace_tarball

BASE = "/api/v1/alice/foo"


async def _running_notebook(app: Any, client: Any, owner: Any) -> tuple[Reconciler, FakeRuntime]:
    r = await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    runtime = FakeRuntime()
    rec = Reconciler(
        app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_plugins]
    )
    r = await client.post(f"{BASE}/notebook/start", headers=owner.headers)
    assert r.status_code == 201, r.text
    await rec.reconcile_once()
    assert (await client.get(f"{BASE}/notebook", headers=owner.headers)).json()[
        "last_status"
    ] == "running"
    return rec, runtime


async def _versions(app: Any) -> int:
    async with session_scope(app.state.sessionmaker) as session:
        return await session.scalar(select(func.count()).select_from(CodeReference))


async def _stop_and_reconcile(client: Any, owner: Any, rec: Reconciler, **kwargs: Any) -> dict:
    """The seed's call (no body) unless `json` is given; then the workload must be gone."""
    r = await client.post(f"{BASE}/notebook/stop", headers=owner.headers, **kwargs)
    assert r.status_code == 200, r.text
    await rec.reconcile_once()
    assert rec.runtime.running_count() == 0  # type: ignore[attr-defined]
    return r.json()


async def test_stopping_a_notebook_of_a_project_without_code_stops_it(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    rec, _ = await _running_notebook(app, client, owner)
    body = await _stop_and_reconcile(client, owner, rec)  # no body: commit defaults to true
    assert body["last_status"] == "stopped" and body["commit"] is None
    assert body["message"] == f"{service.STOPPED} {service.NOTHING_SAVED}"
    assert await _versions(app) == 0
    nb = (await client.get(f"{BASE}/notebook", headers=owner.headers)).json()
    assert nb["last_status"] == "stopped" and nb["message"] == body["message"]


async def test_an_unchanged_workspace_stores_no_version(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    r = await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    first = (await upload(client, owner, v0_tarball({"train.py": b"v1"}))).json()
    runtime = FakeRuntime()
    rec = Reconciler(
        app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_plugins]
    )
    r = await client.post(f"{BASE}/notebook/start", headers=owner.headers)
    assert r.status_code == 201, r.text
    await rec.reconcile_once()
    body = await _stop_and_reconcile(client, owner, rec, json={"commit": True})
    assert body["last_status"] == "stopped" and body["commit"] is None
    assert body["message"] == f"{service.STOPPED} {service.UNCHANGED}"
    assert await _versions(app) == 1
    repo = (await client.get(f"{BASE}/repo", headers=owner.headers)).json()
    assert repo["commit"] == first["commit"]


async def test_a_failure_to_save_is_told_and_the_notebook_still_stops(
    backend: str, app: Any, client: Any, owner: Any, monkeypatch: Any
) -> None:
    rec, _ = await _running_notebook(app, client, owner)
    async with session_scope(app.state.sessionmaker) as session:
        row_id = (await session.scalars(select(NotebookJob.id))).one()
    workdir = service.notebook_workdir(app.state.settings, row_id)
    (workdir / "analysis.ipynb").write_text("{}")

    async def disk_full(*_args: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(service, "snapshot_directory", disk_full)
    body = await _stop_and_reconcile(client, owner, rec, json={"commit": True})
    assert body["last_status"] == "stopped" and body["commit"] is None
    assert "could not be saved" in body["message"] and "No space left" in body["message"]
    nb = (await client.get(f"{BASE}/notebook", headers=owner.headers)).json()
    assert nb["last_status"] == "stopped" and nb["message"] == body["message"]
    assert await _versions(app) == 0


async def test_a_database_error_while_saving_does_not_undo_the_stop(
    backend: str, app: Any, client: Any, owner: Any, monkeypatch: Any
) -> None:
    """A failure inside the publication's savepoint is rolled back alone: the stop commits."""
    rec, _ = await _running_notebook(app, client, owner)
    async with session_scope(app.state.sessionmaker) as session:
        row_id = (await session.scalars(select(NotebookJob.id))).one()
    (service.notebook_workdir(app.state.settings, row_id) / "a.py").write_text("print(1)\n")

    async def broken(session: Any, *_args: Any) -> Any:
        from sqlalchemy import text

        await session.execute(text("SELECT * FROM no_such_table"))

    monkeypatch.setattr(service.code_service, "publish_version", broken)
    body = await _stop_and_reconcile(client, owner, rec, json={"commit": True})
    assert body["last_status"] == "stopped" and "could not be saved" in body["message"]
    assert await _versions(app) == 0


async def test_the_saved_version_is_named_in_the_message(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    rec, runtime = await _running_notebook(app, client, owner)
    (spec,) = runtime.specs.values()
    (Path(spec.workdir) / "train.py").write_text("print('edited')\n")
    body = await _stop_and_reconcile(client, owner, rec, json={"commit": True})
    assert body["commit"] and body["message"].endswith(f"version {body['commit'][:12]}.")
    assert await _versions(app) == 1


# -- Kubernetes: the work arrives after the stop, from the pod's preStop hook ------------------


async def test_kubernetes_an_empty_workspace_upload_is_nothing_to_save(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    app.state.settings.runtime = "kubernetes"
    r = await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    r = await client.post(f"{BASE}/notebook/start", headers=owner.headers)
    notebook_id = r.json()["id"]
    pod = await _run_headers(app, owner, "notebook", notebook_id)
    r = await client.post(f"{BASE}/notebook/stop", headers=owner.headers)
    assert r.status_code == 200 and r.json()["last_status"] == "stopped", r.text

    empty = workspace_tarball({})
    r = await _snapshot(client, pod, notebook_id, empty)
    assert r.status_code == 204, r.text
    assert await _versions(app) == 0
    nb = (await client.get(f"{BASE}/notebook", headers=owner.headers)).json()
    assert nb["message"] == f"{service.STOPPED} {service.NOTHING_SAVED}"
    # Settled: a later upload stores nothing either.
    r = await _snapshot(client, pod, notebook_id, workspace_tarball({"a.py": b"1"}))
    assert r.status_code == 204 and await _versions(app) == 0


async def test_kubernetes_a_bad_upload_is_told_on_the_notebook(
    backend: str, app: Any, client: Any, owner: Any
) -> None:
    app.state.settings.runtime = "kubernetes"
    await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    r = await client.post(f"{BASE}/notebook/start", headers=owner.headers)
    notebook_id = r.json()["id"]
    pod = await _run_headers(app, owner, "notebook", notebook_id)
    await client.post(f"{BASE}/notebook/stop", json={"commit": True}, headers=owner.headers)

    r = await _snapshot(client, pod, notebook_id, b"not a tarball at all")
    assert r.status_code == 400, r.text
    nb = (await client.get(f"{BASE}/notebook", headers=owner.headers)).json()
    assert nb["last_status"] == "stopped"
    assert nb["message"].startswith(f"{service.STOPPED} Its work could not be saved: repo: ")
    # A good upload afterwards is still stored, and says so.
    r = await _snapshot(client, pod, notebook_id, workspace_tarball({"a.py": b"1"}))
    assert r.status_code == 201, r.text
    nb = (await client.get(f"{BASE}/notebook", headers=owner.headers)).json()
    assert nb["message"].endswith(f"version {r.json()['commit'][:12]}.")
