"""Runs start in a copy of *their* code version: a later upload never changes a running run."""

from __future__ import annotations

import io
import tarfile
import time

import httpx


def _tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _upload(c: httpx.Client, version: str) -> None:
    blob = _tarball({"version.txt": version, "run.sh": "sleep 1.5; cat version.txt"})
    r = c.put("/api/v1/admin/p/repo/upload",
              files={"repo": ("/tmp/p/repo.tar.gz", blob, "application/gzip")})
    assert r.status_code in (200, 201), r.text


def _wait_done(c: httpx.Client, path: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = c.get(path).json()
        if body["last_status"] in ("succeeded", "failed", "stopped"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{path} did not finish: {body['last_status']}")


def test_run_keeps_its_code_version_across_uploads(server):
    srv = server()
    with srv.client() as c:
        assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        _upload(c, "v1")
        config = {"version": 1, "kind": "experiment",
                  "run": {"cmd": "echo changed > scratch.txt; bash run.sh"}}
        r = c.post("/api/v1/admin/p/experiments", json={"config": config})
        assert r.status_code == 201, r.text
        first = f"/api/v1/admin/p/experiments/{r.json()['id']}"
        deadline = time.monotonic() + 20
        while c.get(first).json()["last_status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        _upload(c, "v2")  # while the first run is still going
        r = c.post("/api/v1/admin/p/experiments", json={"config": config})
        second = f"/api/v1/admin/p/experiments/{r.json()['id']}"
        assert _wait_done(c, first)["last_status"] == "succeeded"
        assert _wait_done(c, second)["last_status"] == "succeeded"
        assert c.get(first + "/logs").text.strip().endswith("v1")
        assert c.get(second + "/logs").text.strip().endswith("v2")
        # The run wrote beside its code (scratch.txt); the stored version is untouched.
        download = c.get("/api/v1/admin/p/repo/download")
        with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as tar:
            names = {m.name.lstrip("./") for m in tar.getmembers()}
        assert "scratch.txt" not in names and "version.txt" in names
