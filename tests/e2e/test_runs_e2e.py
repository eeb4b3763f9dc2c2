"""Experiments and jobs run for real under `plx server` with the local runtime."""

from __future__ import annotations

import time

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
        t0 = time.monotonic()
        assert c.post(slow + "/stop").status_code == 200
        _wait_status(c, slow, {"stopped"}, timeout=15)
        assert time.monotonic() - t0 < 15
        job_cfg = "version: 1\nkind: job\nbuild:\n  image: busybox\nrun:\n  cmd: echo hello\n"
        r = c.post("/api/v1/admin/p/jobs", json={"config": job_cfg})
        job = f"/api/v1/admin/p/jobs/{r.json()['id']}"
        _wait_status(c, job, {"succeeded"})
        assert "hello" in c.get(job + "/logs").text


def test_server_killed_mid_run_gets_true_status_once(server):
    srv = server()
    with srv.client() as c:
        c.post("/api/v1/projects", json={"name": "p"})
        exp = _experiment(c, "sleep 2; exit 4")
        _wait_status(c, exp, {"running"})
    srv.kill()
    time.sleep(2.5)
    srv.start()
    with srv.client() as c:
        _wait_status(c, exp, {"failed"})
        time.sleep(1)
        statuses = [s["status"] for s in c.get(exp + "/statuses").json()["results"]]
        assert statuses.count("failed") == 1 and statuses.count("running") == 1
        assert c.get(exp + "/jobs").json()["count"] == 1
