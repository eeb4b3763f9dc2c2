"""`POST X/notebook/{id}/repo/upload`: a stopped notebook's workspace, uploaded by its pod's
preStop hook on the Kubernetes runtime, becomes the project's new code version (once, and only
after a stop with `commit`). On SQLite and Postgres (the `backend` fixture)."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import session_scope
from app.models import CodeReference, Experiment, NotebookJob, User
from app.services.users import create_run_token
from tests.api.test_code import file_member, make_tarball, special_member

BASE = "/api/v1/alice/foo"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"runtime": "kubernetes"}


def workspace_tarball(files: dict[str, bytes]) -> bytes:
    return make_tarball([file_member(name, data) for name, data in files.items()])


async def _project(client, owner, name: str = "foo", *, public: bool = False) -> None:
    body = {"name": name, "is_public": public}
    r = await client.post("/api/v1/projects", json=body, headers=owner.headers)
    assert r.status_code == 201, r.text


async def _start_notebook(app, client, owner, base: str = BASE) -> tuple[int, dict[str, str]]:
    """A notebook and the token its pod gets (as app/reconciler/plugins.py makes it)."""
    r = await client.post(f"{base}/notebook/start", headers=owner.headers)
    assert r.status_code == 201, r.text
    notebook_id = r.json()["id"]
    return notebook_id, await _run_headers(app, owner, "notebook", notebook_id)


async def _run_headers(app, owner, kind: str, run_id: int) -> dict[str, str]:
    async with session_scope(app.state.sessionmaker) as session:
        user = await session.get(User, owner.id)
        token = await create_run_token(session, user, kind=kind, run_id=run_id)
    return {"Authorization": f"token {token}"}


async def _stop(client, owner, *, commit: bool, base: str = BASE) -> dict[str, Any]:
    r = await client.post(f"{base}/notebook/stop", json={"commit": commit}, headers=owner.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _snapshot(client, headers, notebook_id: int, payload: bytes, base: str = BASE):
    files = {"repo": ("notebook.tar.gz", payload, "application/gzip")}
    return await client.post(
        f"{base}/notebook/{notebook_id}/repo/upload", files=files, headers=headers
    )


async def _versions(app) -> int:
    async with session_scope(app.state.sessionmaker) as session:
        return await session.scalar(select(func.count()).select_from(CodeReference))


async def _repo(client, owner) -> dict[str, Any]:
    r = await client.get(f"{BASE}/repo", headers=owner.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _download(client, owner, commit: str) -> dict[str, bytes]:
    r = await client.get(f"{BASE}/repo/download?commit={commit}", headers=owner.headers)
    assert r.status_code == 200, r.text
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar if m.isfile()}


async def test_commit_stop_then_the_pods_upload_is_the_new_version(app, client, owner):
    await _project(client, owner)
    notebook_id, pod = await _start_notebook(app, client, owner)
    stopped = await _stop(client, owner, commit=True)
    # On Kubernetes the work is in the pod: the version comes with its upload, not the stop.
    assert stopped["commit"] is None and stopped["last_status"] == "stopped"
    assert await _versions(app) == 0

    files = {"train.ipynb": b'{"cells": []}', "data/notes.txt": b"edited in the notebook\n"}
    r = await _snapshot(client, pod, notebook_id, workspace_tarball(files))
    assert r.status_code == 201, r.text
    ref = r.json()
    assert ref["num_files"] == 2 and len(ref["commit"]) >= 7
    repo = await _repo(client, owner)
    assert repo["commit"] == ref["commit"] and len(repo["versions"]) == 1
    assert await _download(client, owner, ref["commit"]) == files

    # Once: a second upload (a restarted hook, a replay) stores nothing.
    again = await _snapshot(client, pod, notebook_id, workspace_tarball({"other.py": b"x"}))
    assert again.status_code == 204 and again.content == b""
    assert await _versions(app) == 1
    assert (await _repo(client, owner))["commit"] == ref["commit"]


async def test_stop_without_commit_stores_nothing(app, client, owner):
    await _project(client, owner)
    notebook_id, pod = await _start_notebook(app, client, owner)
    await _stop(client, owner, commit=False)
    r = await _snapshot(client, pod, notebook_id, workspace_tarball({"a.py": b"1"}))
    assert r.status_code == 204, r.text
    assert await _versions(app) == 0
    assert (await _repo(client, owner))["has_code"] is False


async def test_a_running_notebook_stores_nothing(app, client, owner):
    """A pod deleted for another reason (eviction, node drain) runs its hook too: no stop, no
    version."""
    await _project(client, owner)
    notebook_id, pod = await _start_notebook(app, client, owner)
    r = await _snapshot(client, pod, notebook_id, workspace_tarball({"a.py": b"1"}))
    assert r.status_code == 204, r.text
    assert await _versions(app) == 0
    # The stop with commit that follows still gets its version.
    await _stop(client, owner, commit=True)
    r = await _snapshot(client, pod, notebook_id, workspace_tarball({"a.py": b"2"}))
    assert r.status_code == 201, r.text


async def test_only_the_notebooks_own_token_or_a_writer(app, client, owner, other, make_user):
    await _project(client, owner, public=True)
    first_id, _first_pod = await _start_notebook(app, client, owner)
    await _stop(client, owner, commit=False)
    notebook_id, pod = await _start_notebook(app, client, owner)
    await _stop(client, owner, commit=True)
    payload = workspace_tarball({"a.py": b"print(1)\n"})

    # Another notebook's token, and an experiment's token of the same project: 403.
    first_pod = await _run_headers(app, owner, "notebook", first_id)
    async with session_scope(app.state.sessionmaker) as session:
        project_id = (await session.scalar(select(NotebookJob.project_id).limit(1))) or 0
        experiment = Experiment(user_id=owner.id, project_id=project_id)
        session.add(experiment)
        await session.flush()
        experiment_id = experiment.id
    experiment_token = await _run_headers(app, owner, "experiment", experiment_id)
    for headers in (first_pod, experiment_token):
        r = await _snapshot(client, headers, notebook_id, payload)
        assert r.status_code == 403, r.text
        assert "own run" in r.json()["detail"]
    # A user who may only read the (public) project: 403; no token at all: 401.
    r = await _snapshot(client, other.headers, notebook_id, payload)
    assert r.status_code == 403, r.text
    r = await _snapshot(client, {}, notebook_id, payload)
    assert r.status_code == 401, r.text
    assert await _versions(app) == 0

    # The owner (write access) may upload it in the pod's stead.
    r = await _snapshot(client, owner.headers, notebook_id, payload)
    assert r.status_code == 201, r.text
    # ...and then the pod's own upload finds it done.
    r = await _snapshot(client, pod, notebook_id, payload)
    assert r.status_code == 204, r.text


async def test_ids_of_another_project_are_404(app, client, owner, other):
    await _project(client, owner)
    await _project(client, owner, "bar")
    notebook_id, pod = await _start_notebook(app, client, owner)
    await _stop(client, owner, commit=True)
    payload = workspace_tarball({"a.py": b"1"})
    # The notebook exists, but in foo: under bar it is not found, with any token.
    for headers in (pod, owner.headers):
        r = await _snapshot(client, headers, notebook_id, payload, base="/api/v1/alice/bar")
        assert r.status_code == 404, r.text
    r = await _snapshot(client, owner.headers, notebook_id + 1000, payload)
    assert r.status_code == 404, r.text
    # The pod's token reaches its own notebook only (app.deps.run_token_route).
    r = await _snapshot(client, pod, notebook_id + 1000, payload)
    assert r.status_code == 403, r.text
    # Someone else's private project: 404, its existence not leaked.
    r = await _snapshot(client, other.headers, notebook_id, payload)
    assert r.status_code == 404, r.text
    assert await _versions(app) == 0


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"not a tarball at all", "not a gzip-compressed tarball"),
        (make_tarball([file_member("../escape.py", b"x")]), "escape.py"),
        (make_tarball([special_member("link", tarfile.SYMTYPE, "/etc/passwd")]), "symlink"),
    ],
)
async def test_a_bad_archive_is_400_and_writes_nothing(
    app, client, owner, settings, payload, fragment
):
    await _project(client, owner)
    notebook_id, pod = await _start_notebook(app, client, owner)
    await _stop(client, owner, commit=True)
    r = await _snapshot(client, pod, notebook_id, payload)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["detail"] and r.json()["detail"].startswith("repo: ")
    assert await _versions(app) == 0
    repos = settings.data_dir / "repos"
    assert not repos.exists() or not any(p for p in repos.rglob("*") if p.is_file())
    # Nothing was claimed either: the hook's retry (or a good archive) is still stored.
    r = await _snapshot(client, pod, notebook_id, workspace_tarball({"ok.py": b"1"}))
    assert r.status_code == 201, r.text


async def test_the_body_must_be_the_multipart_repo_field(app, client, owner):
    await _project(client, owner)
    notebook_id, pod = await _start_notebook(app, client, owner)
    await _stop(client, owner, commit=True)
    r = await client.post(
        f"{BASE}/notebook/{notebook_id}/repo/upload",
        content=workspace_tarball({"a.py": b"1"}),
        headers={**pod, "Content-Type": "application/gzip"},
    )
    assert r.status_code == 400 and "multipart/form-data" in r.json()["detail"], r.text
    assert await _versions(app) == 0


async def test_local_runtime_commits_at_the_stop_and_the_route_adds_nothing(
    app, client, owner, settings
):
    """The local runtime snapshots the working copy itself when stopping: nothing is owed."""
    settings.runtime = "fake"
    await _project(client, owner)
    notebook_id, pod = await _start_notebook(app, client, owner)
    await _stop(client, owner, commit=True)
    r = await _snapshot(client, pod, notebook_id, workspace_tarball({"a.py": b"1"}))
    assert r.status_code == 204, r.text
    assert await _versions(app) == 0
