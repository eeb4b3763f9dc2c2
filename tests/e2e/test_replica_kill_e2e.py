"""Two `plx server` replicas on one Postgres and one PLX_DATA_DIR (local runtime); the first is
SIGKILLed when 40% of a sweep has succeeded. The survivor finishes it, each experiment runs
exactly once, and no pass of its reconciler failed (issue 15 item 4). The size of the issue (500
experiments, concurrency 8, kill at 200) is `bench/bench_replica_kill.py`."""

from __future__ import annotations

import signal
import time

import pytest

from app.services.leases import DEFAULT_TTL
from tests.e2e import test_crash_points_e2e as crash
from tests.e2e.test_crash_points_e2e import (
    GROUPS,
    executions,
    group_experiments,
    live_workloads,
    sweep_content,
    wait_group_done,
)

pg_url = crash.pg_url  # a fresh database per test (skips without PLX_TEST_POSTGRES_URL)

pytestmark = pytest.mark.e2e

N, CONCURRENCY = 40, 8
KILL_AT = N * 2 // 5


def test_two_replicas_one_killed_at_40_percent_the_survivor_runs_each_experiment_once(
    server, tmp_path, pg_url
):
    data, ran = tmp_path / "data", tmp_path / "ran.txt"
    # One after the other: the first migrates the database.
    srvs = [
        server(
            data_dir=data,
            database_url=pg_url,
            reconcile_interval=0.5,
            local_max_parallel=CONCURRENCY,
        )
        for _ in range(2)
    ]
    with srvs[0].client() as c:
        assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        r = c.post(GROUPS, json={"content": sweep_content(ran, N, CONCURRENCY, 0.2)})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]
        deadline = time.monotonic() + 120
        while c.get(f"{GROUPS}/{gid}").json()["num_succeeded_experiments"] < KILL_AT:
            assert time.monotonic() < deadline, c.get(f"{GROUPS}/{gid}").json()
            time.sleep(0.05)
    srvs[0].kill(signal.SIGKILL)
    assert len(executions(ran)) < N
    with srvs[1].client() as c:
        # What the dead replica held (start leases) is free within one lease period.
        body = wait_group_done(c, gid, timeout=DEFAULT_TTL + 90)
        exps = group_experiments(c, gid)
    assert body["last_status"] == "succeeded", body
    assert body["num_succeeded_experiments"] == N, body
    counts = executions(ran)
    assert sorted(counts) == sorted(e["id"] for e in exps), counts
    assert set(counts.values()) == {1}, counts  # each experiment ran exactly once
    assert live_workloads(data) == []
    log = srvs[1].log.read_text(errors="replace")
    assert "reconciler step" not in log and "FileNotFoundError" not in log, log[-3000:]
