"""Storage bounds: per-owner code quotas (count, bytes) with retention of old versions, log
appends bounded per request, per run and per owner, and logs read streamed or tailed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.services.code import version_dir
from app.services.runs import log_path
from tests.api.test_code import upload, v0_tarball

EXPERIMENT = {"version": 1, "kind": "experiment"}  # tracking-only: never started


async def _project(client, owner, name: str = "foo") -> None:
    r = await client.post("/api/v1/projects", json={"name": name}, headers=owner.headers)
    assert r.status_code == 201


async def _versions(client, owner, name: str = "foo") -> list[str]:
    r = await client.get(f"/api/v1/alice/{name}/repo", headers=owner.headers)
    return [v["commit"] for v in r.json()["versions"]]


async def _gone(path: Path) -> bool:
    for _ in range(100):  # files go once the transaction is committed, in a worker thread
        if not path.exists():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_code_version_count_quota_is_per_owner_and_writes_nothing(client, app, owner):
    app.state.settings.user_code_quota_versions = 2
    await _project(client, owner, "foo")
    await _project(client, owner, "bar")
    assert (await upload(client, owner, v0_tarball({"a.py": b"1"}))).status_code == 200
    url = "/api/v1/alice/bar/repo/upload"
    assert (await upload(client, owner, v0_tarball({"a.py": b"2"}), url=url)).status_code == 200
    repos = Path(app.state.settings.data_dir) / "repos"
    on_disk = sorted(str(p) for p in repos.rglob("*"))
    r = await upload(client, owner, v0_tarball({"a.py": b"3"}))
    assert r.status_code == 413 and "PLX_USER_CODE_QUOTA_VERSIONS" in r.json()["detail"]
    assert len(await _versions(client, owner)) == 1
    assert sorted(str(p) for p in repos.rglob("*")) == on_disk  # no scratch dir left either
    # The same content again is no new version: allowed.
    assert (await upload(client, owner, v0_tarball({"a.py": b"1"}))).status_code == 200


async def test_code_bytes_quota(client, app, owner):
    app.state.settings.user_code_quota_bytes = 1500
    await _project(client, owner)
    assert (await upload(client, owner, v0_tarball({"a.py": b"x" * 1000}))).status_code == 200
    r = await upload(client, owner, v0_tarball({"a.py": b"y" * 1000}))
    assert r.status_code == 413 and "PLX_USER_CODE_QUOTA_BYTES" in r.json()["detail"]
    assert len(await _versions(client, owner)) == 1


async def test_retention_keeps_the_last_n_and_every_version_a_run_uses(client, app, owner):
    settings = app.state.settings
    settings.code_versions_keep = 2
    await _project(client, owner)
    first = (await upload(client, owner, v0_tarball({"a.py": b"1"}))).json()["commit"]
    r = await client.post(
        "/api/v1/alice/foo/experiments", json={"config": EXPERIMENT}, headers=owner.headers
    )
    assert r.status_code == 201  # runs `first`
    second = (await upload(client, owner, v0_tarball({"a.py": b"2"}))).json()["commit"]
    third = (await upload(client, owner, v0_tarball({"a.py": b"3"}))).json()["commit"]
    assert set(await _versions(client, owner)) == {first, second, third}  # `first` is in use
    project_id = (await client.get("/api/v1/alice/foo", headers=owner.headers)).json()["id"]
    fourth = (await upload(client, owner, v0_tarball({"a.py": b"4"}))).json()["commit"]
    assert set(await _versions(client, owner)) == {first, third, fourth}
    assert await _gone(version_dir(settings, project_id, second))
    assert version_dir(settings, project_id, first).is_dir()
    r = await client.get(f"/api/v1/alice/foo/repo/download?commit={first}", headers=owner.headers)
    assert r.status_code == 200


async def test_retention_counts_before_the_quota(client, app, owner):
    app.state.settings.code_versions_keep = 1
    app.state.settings.user_code_quota_versions = 1
    await _project(client, owner)
    for n in range(3):
        r = await upload(client, owner, v0_tarball({"a.py": str(n).encode()}))
        assert r.status_code == 200, r.text
    assert len(await _versions(client, owner)) == 1


KINDS = [
    ("experiments", "experiment", {"version": 1, "kind": "experiment"}),
    ("jobs", "job", "version: 1\nkind: job\nbuild:\n  image: busybox\nrun:\n  cmd: echo hi\n"),
    ("builds", "build", "version: 1\nkind: build\nbuild:\n  image: python:3.11\n"),
]


async def _run(client, owner, route: str, config) -> str:
    r = await client.post(
        f"/api/v1/alice/foo/{route}", json={"config": config}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    return f"/api/v1/alice/foo/{route}/{r.json()['id']}"


@pytest.mark.parametrize(("route", "kind", "config"), KINDS)
async def test_log_append_limits_per_request_and_per_run(client, app, owner, route, kind, config):
    settings = app.state.settings
    settings.max_log_append_bytes = 1000
    settings.max_log_bytes_per_run = 2500
    await _project(client, owner)
    base = await _run(client, owner, route, config)
    run_id = int(base.rsplit("/", 1)[1])
    r = await client.post(base + "/logs", json=["x" * 1001], headers=owner.headers)
    assert r.status_code == 413 and "PLX_MAX_LOG_APPEND_BYTES" in r.json()["detail"]
    assert not log_path(settings, kind, run_id).exists()
    for _ in range(2):
        assert (
            await client.post(base + "/logs", json="y" * 900, headers=owner.headers)
        ).status_code == 200
    r = await client.post(base + "/logs", json="z" * 900, headers=owner.headers)
    assert r.status_code == 413 and "PLX_MAX_LOG_BYTES_PER_RUN" in r.json()["detail"]
    assert log_path(settings, kind, run_id).stat().st_size == 2 * 901
    r = await client.post(base + "/logs", json={"not": "lines"}, headers=owner.headers)
    assert r.status_code == 400


async def test_log_quota_is_per_owner_across_runs(client, app, owner, other):
    settings = app.state.settings
    settings.user_log_quota_bytes = 3000
    await _project(client, owner)
    first = await _run(client, owner, "experiments", EXPERIMENT)
    second = await _run(client, owner, "jobs", KINDS[1][2])
    assert (
        await client.post(first + "/logs", json="a" * 1999, headers=owner.headers)
    ).status_code == 200
    r = await client.post(second + "/logs", json="b" * 1000, headers=owner.headers)
    assert r.status_code == 413 and "PLX_USER_LOG_QUOTA_BYTES" in r.json()["detail"]
    assert (
        await client.post(second + "/logs", json="b" * 999, headers=owner.headers)
    ).status_code == 200
    # Another owner's logs are not counted against alice.
    r = await client.post("/api/v1/projects", json={"name": "own"}, headers=other.headers)
    r = await client.post(
        "/api/v1/bob/own/experiments", json={"config": EXPERIMENT}, headers=other.headers
    )
    url = f"/api/v1/bob/own/experiments/{r.json()['id']}/logs"
    assert (await client.post(url, json="c" * 2000, headers=other.headers)).status_code == 200


@pytest.mark.parametrize(("route", "kind", "config"), KINDS)
async def test_logs_are_streamed_whole_or_tailed(client, app, owner, route, kind, config):
    await _project(client, owner)
    base = await _run(client, owner, route, config)
    path = log_path(app.state.settings, kind, int(base.rsplit("/", 1)[1]))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several read chunks, with multi-byte characters across chunk boundaries.
    lines = [f"line {n} é€ {'x' * (n % 97)}" for n in range(6000)]
    path.write_text("\n".join(lines) + "\n")
    r = await client.get(base + "/logs", headers=owner.headers)
    assert r.status_code == 200 and r.text.splitlines() == lines
    for n in (1, 5, 5999, 6000, 10_000):
        r = await client.get(f"{base}/logs?tail={n}", headers=owner.headers)
        assert r.status_code == 200 and r.text.splitlines() == lines[-n:], n
    path.write_text("no newline at the end")
    assert (
        await client.get(f"{base}/logs?tail=1", headers=owner.headers)
    ).text == "no newline at the end"
    for bad in ("0", "-1", "x"):
        r = await client.get(f"{base}/logs?tail={bad}", headers=owner.headers)
        assert r.status_code == 400 and "tail" in r.json()["detail"]
    path.unlink()
    assert (await client.get(base + "/logs", headers=owner.headers)).status_code == 404
