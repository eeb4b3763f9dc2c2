"""Code upload / download: round trip, versions, and hostile tarballs that must change nothing."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from app.services.code import code_checkout_path

UPLOAD = "/api/v1/alice/foo/repo/upload"


def make_tarball(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_member(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def special_member(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def v0_tarball(files: dict[str, bytes]) -> bytes:
    """As polyaxon-cli 0.3.9 builds it: `./`-prefixed members, a `./` directory entry."""
    members = [special_member("./", tarfile.DIRTYPE)]
    members += [file_member(f"./{name}", data) for name, data in files.items()]
    return make_tarball(members)


async def upload(client, user, payload: bytes, *, url: str = UPLOAD):
    # Like the v0 client: the filename is the absolute temp path, part type text/plain.
    files = {"repo": ("/tmp/polyaxon_foo8k2j.tar.gz", payload, "text/plain")}
    return await client.put(url, files=files, headers=user.headers)


@pytest.fixture
async def project(client, owner):
    r = await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    assert r.status_code == 201
    return r.json()


def repo_files(settings) -> set[str]:
    root = Path(settings.data_dir) / "repos"
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*")}


async def test_upload_download_round_trip(client, owner, project, settings):
    files = {"train.py": b"print('hello')\n", "pkg/util.py": b"X = 1\n"}
    r = await upload(client, owner, v0_tarball(files))
    assert r.status_code == 200, r.text
    version = r.json()
    assert len(version["commit"]) == 64 and version["num_files"] == 2
    assert version["size_bytes"] == sum(len(v) for v in files.values())

    detail = (await client.get("/api/v1/alice/foo", headers=owner.headers)).json()
    assert detail["has_code"] is True

    r = await client.get("/api/v1/alice/foo/repo/download", headers=owner.headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/gzip"
    assert 'filename="foo.tar.gz"' in r.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        got = {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar if m.isfile()}
    assert got == files

    tree = await code_checkout_path(settings, project["id"], version["commit"])
    assert (tree / "train.py").read_bytes() == files["train.py"]
    assert (tree / "pkg" / "util.py").read_bytes() == files["pkg/util.py"]
    assert not os.stat(tree / "train.py").st_mode & 0o222  # read-only version
    assert not os.stat(tree / "pkg").st_mode & 0o222  # no directory entry in the tar for it
    assert not os.stat(tree).st_mode & 0o222


async def test_versions_are_immutable_and_addressable(client, owner, project, settings):
    first = (await upload(client, owner, v0_tarball({"a.py": b"1"}))).json()
    second = (await upload(client, owner, v0_tarball({"a.py": b"2"}))).json()
    assert first["commit"] != second["commit"]

    repo = (await client.get("/api/v1/alice/foo/repo", headers=owner.headers)).json()
    assert repo["commit"] == second["commit"] and repo["has_code"] is True
    assert [v["commit"] for v in repo["versions"]] == [second["commit"], first["commit"]]

    r = await client.get(
        f"/api/v1/alice/foo/repo/download?commit={first['commit'][:12]}", headers=owner.headers
    )
    assert r.status_code == 200 and r.headers["x-plx-commit"] == first["commit"]
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        assert tar.extractfile("./a.py").read() == b"1"
    old_tree = await code_checkout_path(settings, project["id"], first["commit"])
    assert (old_tree / "a.py").read_bytes() == b"1"

    # The same content again is the same version: no new row, it becomes current again.
    again = (await upload(client, owner, v0_tarball({"a.py": b"1"}))).json()
    assert again["id"] == first["id"]
    repo = (await client.get("/api/v1/alice/foo/repo", headers=owner.headers)).json()
    assert repo["commit"] == first["commit"] and len(repo["versions"]) == 2

    r = await client.get("/api/v1/alice/foo/repo/download?commit=abcdef0", headers=owner.headers)
    assert r.status_code == 404


async def test_checkout_is_rebuilt_from_the_tarball(client, owner, project, settings):
    version = (await upload(client, owner, v0_tarball({"a.py": b"1"}))).json()
    tree = await code_checkout_path(settings, project["id"], version["commit"])
    from app.logic.tarballs import remove_tree

    remove_tree(tree)
    rebuilt = await code_checkout_path(settings, project["id"], version["commit"])
    assert rebuilt == tree and (tree / "a.py").read_bytes() == b"1"


async def test_download_without_code_is_404(client, owner, project):
    r = await client.get("/api/v1/alice/foo/repo/download", headers=owner.headers)
    assert r.status_code == 404
    repo = (await client.get("/api/v1/alice/foo/repo", headers=owner.headers)).json()
    assert repo["has_code"] is False and repo["versions"] == []


async def test_upload_permissions(client, owner, other, project):
    r = await upload(client, other, v0_tarball({"a.py": b"1"}))
    assert r.status_code == 403  # public project of someone else
    r = await client.patch("/api/v1/alice/foo", json={"is_public": False}, headers=owner.headers)
    r = await upload(client, other, v0_tarball({"a.py": b"1"}))
    assert r.status_code == 404
    r = await client.get("/api/v1/alice/foo/repo/download", headers=other.headers)
    assert r.status_code == 404


async def test_public_project_code_is_readable_by_others(client, owner, other, project):
    await upload(client, owner, v0_tarball({"a.py": b"1"}))
    r = await client.get("/api/v1/alice/foo/repo/download", headers=other.headers)
    assert r.status_code == 200


def _symlink(name: str, target: str):
    return special_member(name, tarfile.SYMTYPE, target)


def _hardlink(name: str, target: str):
    return special_member(name, tarfile.LNKTYPE, target)


def _gzip_bomb() -> bytes:
    """2 MiB of zeros in one file: tiny compressed, over the test's 1 MiB uncompressed limit."""
    return make_tarball([file_member("zeros.bin", b"\0" * (2 * 1024 * 1024))])


HOSTILE = {
    "absolute": (make_tarball([file_member("/etc/evil", b"x")]), 400, "absolute"),
    "dotdot": (make_tarball([file_member("./../evil", b"x")]), 400, "`..`"),
    "dotdot-deep": (make_tarball([file_member("a/../../evil", b"x")]), 400, "`..`"),
    "symlink-out": (
        make_tarball([file_member("a.py", b"1"), _symlink("link", "../../outside")]),
        400,
        "symlink",
    ),
    "symlink-absolute": (
        make_tarball([file_member("a.py", b"1"), _symlink("link", "/etc/passwd")]),
        400,
        "symlink",
    ),
    "symlink-then-write-through": (
        make_tarball([_symlink("d", "."), _symlink("e", "d/.."), file_member("a.py", b"1")]),
        400,
        "symlink",
    ),
    "symlink-retargeted-later": (
        make_tarball([_symlink("t", "x/.."), _symlink("x", "."), file_member("a.py", b"1")]),
        400,
        "symlink `t`",
    ),
    "hardlink-out": (
        make_tarball([file_member("a.py", b"1"), _hardlink("h", "../../etc/passwd")]),
        400,
        "hard link",
    ),
    "hardlink-absolute": (
        make_tarball([file_member("a.py", b"1"), _hardlink("h", "/etc/passwd")]),
        400,
        "hard link",
    ),
    "device": (
        make_tarball([file_member("a.py", b"1"), special_member("dev", tarfile.CHRTYPE)]),
        400,
        "device",
    ),
    "fifo": (
        make_tarball([file_member("a.py", b"1"), special_member("pipe", tarfile.FIFOTYPE)]),
        400,
        "FIFO",
    ),
    "gzip-bomb": (_gzip_bomb(), 413, "uncompressed"),
    "too-many-files": (
        make_tarball([file_member(f"f{i}.py", b"") for i in range(21)]),
        413,
        "more than 20 entries",
    ),
    "not-a-tarball": (b"PK\x03\x04 this is a zip file, not a tarball", 400, "gzip"),
    "gzip-not-tar": (gzip.compress(b"hello world, not a tar" * 100), 400, "tarball"),
    "truncated": (v0_tarball({"a.py": b"x" * 5000})[:60], 400, "tar"),
    "empty": (make_tarball([]), 400, "tarball"),
    "too-large": (os.urandom(3 * 1024 * 1024), 413, "larger than"),
}


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "max_upload_bytes": 2 * 1024 * 1024,
            "max_upload_uncompressed_bytes": 1024 * 1024,
            "max_upload_files": 20,
        }
    ],
)
@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_tarball_changes_nothing(client, owner, project, settings, tmp_path, case):
    good = (await upload(client, owner, v0_tarball({"good.py": b"good"}))).json()
    before = repo_files(settings)
    outside = set(os.listdir(tmp_path))

    payload, status, words = HOSTILE[case]
    r = await upload(client, owner, payload)
    assert r.status_code == status, r.text
    assert words.lower() in r.json()["detail"].lower()
    assert r.json()["detail"].startswith("repo:") or status == 413

    assert repo_files(settings) == before  # no scratch dir, no new version
    assert set(os.listdir(tmp_path)) == outside
    repo = (await client.get("/api/v1/alice/foo/repo", headers=owner.headers)).json()
    assert repo["commit"] == good["commit"] and len(repo["versions"]) == 1
    r = await client.get("/api/v1/alice/foo/repo/download", headers=owner.headers)
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        assert tar.extractfile("./good.py").read() == b"good"


async def test_inside_links_are_kept(client, owner, project, settings):
    payload = make_tarball(
        [
            file_member("pkg/a.py", b"A", mode=0o755),
            _symlink("pkg/b.py", "a.py"),
            _symlink("top", "pkg"),
            _hardlink("pkg/c.py", "pkg/a.py"),
        ]
    )
    r = await upload(client, owner, payload)
    assert r.status_code == 200, r.text
    tree = await code_checkout_path(settings, project["id"], r.json()["commit"])
    assert (tree / "top" / "b.py").read_bytes() == b"A"
    assert (tree / "pkg" / "c.py").read_bytes() == b"A"
    assert os.stat(tree / "pkg" / "a.py").st_mode & 0o111


async def test_body_without_repo_field_is_400(client, owner, project):
    r = await client.put(UPLOAD, files={"other": ("x", b"1")}, headers=owner.headers)
    assert r.status_code == 400 and "repo" in r.json()["detail"]
    r = await client.put(UPLOAD, content=b"raw", headers=owner.headers)
    assert r.status_code == 400 and "multipart" in r.json()["detail"]


async def test_upload_refused_while_notebook_runs(app, client, owner, project):
    from app.db import session_scope
    from app.models import NotebookJob

    async with session_scope(app.state.sessionmaker) as session:
        session.add(NotebookJob(user_id=owner.id, project_id=project["id"], last_status="running"))
    r = await upload(client, owner, v0_tarball({"a.py": b"1"}))
    assert r.status_code == 403 and "notebook" in r.json()["detail"]
