"""More hostile tarball shapes: deep nesting, long names, NUL characters, names that are not
UTF-8. Each answers 400 naming the problem, and nothing is written (a 2,000-deep member once
answered 500 with a RecursionError)."""

from __future__ import annotations

import io
import os
import tarfile
import time

import pytest

from app.logic.tarballs import MAX_DEPTH
from tests.api.test_code import (
    _hardlink,
    _symlink,
    file_member,
    make_tarball,
    repo_files,
    upload,
    v0_tarball,
)


def pax_tarball(members) -> bytes:
    """PAX headers carry any name or link target whole (NUL and length included)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gnu_tarball(members) -> bytes:
    """GNU long-name headers: names of any length."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _dir(name: str):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


DEEP = "/".join(["d"] * 2_000) + "/f.py"
SHAPES = {
    "deep-2000": (make_tarball([file_member("ok.py", b"1"), file_member(DEEP, b"x")]), "deep"),
    "deep-gnu": (gnu_tarball([file_member("ok.py", b"1"), file_member(DEEP, b"x")]), "deep"),
    "deep-dirs-only": (
        gnu_tarball([file_member("ok.py", b"1"), _dir("/".join(["d"] * (MAX_DEPTH + 1)))]),
        "deep",
    ),
    "deep-hardlink-target": (
        gnu_tarball([file_member("ok.py", b"1"), _hardlink("h", DEEP)]),
        "hard link",
    ),
    "long-name": (gnu_tarball([file_member("a" * 20_000 + ".py", b"x")]), "longer than"),
    "long-component": (make_tarball([file_member("d/" + "a" * 300, b"x")]), "longer than"),
    "long-symlink-target": (
        gnu_tarball([file_member("ok.py", b"1"), _symlink("l", "a/" * 5_000)]),
        "target",
    ),
    "nul-in-name": (pax_tarball([file_member("a" * 120 + "\x00.py", b"x")]), "NUL"),
    "nul-in-symlink-target": (
        pax_tarball([file_member("ok.py", b"1"), _symlink("l", "a" * 120 + "\x00b")]),
        "target",
    ),
    "not-utf8-dotdot": (make_tarball([file_member("\udcff/../../x.py", b"x")]), "`..`"),
    "not-utf8-absolute": (make_tarball([file_member("/\udcfe\udcff", b"x")]), "absolute"),
}


@pytest.fixture
async def project(client, owner):
    r = await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    assert r.status_code == 201
    return r.json()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database work involved
async def test_hostile_shapes_answer_400_and_write_nothing(client, owner, project, settings):
    good = (await upload(client, owner, v0_tarball({"good.py": b"good"}))).json()
    before = repo_files(settings)
    for case, (payload, words) in SHAPES.items():
        started = time.monotonic()
        r = await upload(client, owner, payload)
        assert r.status_code == 400, (case, r.text)
        detail = r.json()["detail"]
        assert detail.startswith("repo:") and words.lower() in detail.lower(), (case, detail)
        assert len(detail) < 500, case
        assert time.monotonic() - started < 5, case
        assert repo_files(settings) == before, case
    repo = (await client.get("/api/v1/alice/foo/repo", headers=owner.headers)).json()
    assert repo["commit"] == good["commit"] and len(repo["versions"]) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_deep_but_allowed_trees_round_trip(client, owner, project, settings):
    name = "/".join(["d"] * (MAX_DEPTH - 1)) + "/f.py"
    r = await upload(client, owner, make_tarball([file_member(name, b"deep")]))
    assert r.status_code in (200, 201), r.text
    root = os.path.join(settings.data_dir, "repos")
    assert any("f.py" in files for _, _, files in os.walk(root))
