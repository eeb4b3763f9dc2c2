"""Experiments and jobs run for real under `plx server` with the local runtime."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

POST_METRIC = (
    'curl -sf -X POST -H "Authorization: token $PLX_TOKEN" -H "Content-Type: application/json" '
    '-d \'{"values": {"loss": 0.25}}\' '
    '"$PLX_API_URL/api/v1/$PLX_USERNAME/$PLX_PROJECT/experiments/$PLX_EXPERIMENT_ID/metrics"'
)


def _wait_status(c: httpx.Client, path: str, wanted: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = c.get(path).json()
        if body["last_status"] in wanted:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{path} stayed {body['last_status']}")


def _run_processes(api_url: str, exp_id: str) -> list[int]:
    """Live (non-zombie) processes started for this run: their environment names the run."""
    wanted = {f"PLX_API_URL={api_url}".encode(), f"PLX_EXPERIMENT_ID={exp_id}".encode()}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            env = set(Path(f"/proc/{name}/environ").read_bytes().split(b"\0"))
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if wanted <= env and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def _experiment(c: httpx.Client, cmd: str) -> str:
    config = {"version": 1, "kind": "experiment", "run": {"cmd": cmd}}
    r = c.post("/api/v1/admin/p/experiments", json={"config": config})
    assert r.status_code == 201, r.text
    return f"/api/v1/admin/p/experiments/{r.json()['id']}"


def test_metrics_failure_stop_and_job_logs(server):
    srv = server()
    with srv.client() as c:
        assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        ok = _experiment(c, POST_METRIC)
        bad = _experiment(c, "exit 3")
        slow = _experiment(c, "sleep 60")
        body = _wait_status(c, ok, {"succeeded", "failed"})
        assert body["last_status"] == "succeeded", c.get(ok + "/statuses").json()
        assert body["last_metric"]["loss"] == 0.25
        statuses = [s["status"] for s in c.get(ok + "/statuses").json()["results"]]
        assert statuses[0] == "created" and "running" in statuses
        assert statuses[-1] == "succeeded"
        _wait_status(c, bad, {"failed"})
        messages = [s["message"] or "" for s in c.get(bad + "/statuses").json()["results"]]
        assert any("3" in m for m in messages)
        _wait_status(c, slow, {"running"})
        slow_id = slow.rsplit("/", 1)[1]
        deadline = time.monotonic() + 10
        while not _run_processes(srv.url, slow_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _run_processes(srv.url, slow_id)  # the scan does see the run's processes
        t0 = time.monotonic()
        assert c.post(slow + "/stop").status_code == 200
        _wait_status(c, slow, {"stopped"}, timeout=15)
        assert time.monotonic() - t0 < 15
        deadline = time.monotonic() + 5
        while _run_processes(srv.url, slow_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _run_processes(srv.url, slow_id) == []
        job_cfg = "version: 1\nkind: job\nbuild:\n  image: busybox\nrun:\n  cmd: echo hello\n"
        r = c.post("/api/v1/admin/p/jobs", json={"config": job_cfg})
        job = f"/api/v1/admin/p/jobs/{r.json()['id']}"
        _wait_status(c, job, {"succeeded"})
        assert "hello" in c.get(job + "/logs").text


def test_server_killed_mid_run_gets_true_status_once(server):
    srv = server()
    once = 'echo ran >> "$PLX_OUTPUTS_PATH/ran.txt"; sleep 2; exit {}'
    with srv.client() as c:
        c.post("/api/v1/projects", json={"name": "p"})
        ok = _experiment(c, once.format(0))
        bad = _experiment(c, once.format(4))
        _wait_status(c, ok, {"running"})
        _wait_status(c, bad, {"running"})
    srv.kill()
    time.sleep(2.5)  # both commands end while no server watches them
    srv.start()
    with srv.client() as c:
        assert _wait_status(c, ok, {"succeeded", "failed"})["last_status"] == "succeeded"
        assert _wait_status(c, bad, {"succeeded", "failed"})["last_status"] == "failed"
        time.sleep(1.5)  # a few more passes: nothing may start again
        for path, final in ((ok, "succeeded"), (bad, "failed")):
            statuses = [s["status"] for s in c.get(path + "/statuses").json()["results"]]
            assert statuses.count(final) == 1 and statuses.count("running") == 1, statuses
            assert statuses[-1] == final
            assert c.get(path + "/jobs").json()["count"] == 1
            exp_id = path.rsplit("/", 1)[1]
            ran = srv.data_dir / "runs" / "experiment" / exp_id / "outputs" / "ran.txt"
            assert ran.read_text().splitlines() == ["ran"]  # the command ran exactly once
