"""Two and three `plx server` replicas on one Postgres and one shared PLX_DATA_DIR run one sweep.

The local runtime's state dir is shared, so every replica sees (and can adopt) every workload;
starts are guarded by the `start:{kind}:{id}` lease, a group's passes by its row lock. Each
experiment's command appends its id to a shared file: it must appear exactly once.
"""

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
    suggestion_indexes,
    sweep_content,
    wait_group_done,
)

pg_url = crash.pg_url  # a fresh database per test (skips without PLX_TEST_POSTGRES_URL)

pytestmark = pytest.mark.e2e

N = 12


def _replicas(server, data, url: str, count: int) -> list:
    # One after the other: the first migrates the database, the others find it at head.
    return [
        server(data_dir=data, database_url=url, reconcile_interval=0.2, local_max_parallel=4)
        for _ in range(count)
    ]


def _check(srvs, data, url, gid, ran, body) -> None:
    with srvs[0].client() as c:
        exps = group_experiments(c, gid)
    assert body["last_status"] == "succeeded", body
    assert body["num_experiments"] == N and body["num_succeeded_experiments"] == N, body
    assert sorted(e["declarations"]["x"] for e in exps) == list(range(N))
    assert suggestion_indexes(data, url, gid) == list(range(N))
    counts = executions(ran)
    assert sorted(counts) == sorted(e["id"] for e in exps), counts
    assert set(counts.values()) == {1}, counts  # each experiment started exactly once
    assert live_workloads(data) == []


def test_two_replicas_share_one_sweep_and_start_each_experiment_once(server, tmp_path, pg_url):
    data, ran = tmp_path / "data", tmp_path / "ran.txt"
    srvs = _replicas(server, data, pg_url, 2)
    with srvs[0].client() as c:
        assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        r = c.post(GROUPS, json={"content": sweep_content(ran, N, 4, 0.3)})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]
    with srvs[1].client() as c:  # followed from the other replica
        body = wait_group_done(c, gid, timeout=120)
    _check(srvs, data, pg_url, gid, ran, body)


def test_three_replicas_one_killed_mid_sweep_the_others_finish(server, tmp_path, pg_url):
    data, ran = tmp_path / "data", tmp_path / "ran.txt"
    srvs = _replicas(server, data, pg_url, 3)
    with srvs[0].client() as c:
        assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        r = c.post(GROUPS, json={"content": sweep_content(ran, N, 3, 1.0)})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]
        deadline = time.monotonic() + 60
        while len(executions(ran)) < 3:  # mid-sweep: some ran, most are still to come
            assert time.monotonic() < deadline, c.get(f"{GROUPS}/{gid}").json()
            time.sleep(0.05)
    srvs[0].kill(signal.SIGKILL)
    killed_at = time.monotonic()
    assert len(executions(ran)) < N
    with srvs[1].client() as c:
        # What the dead replica held (a start lease, a group row lock) is free within one lease
        # period; the rest of the sweep (at most 9 one-second runs, 3 at a time) needs a few
        # seconds more on a loaded machine.
        body = wait_group_done(c, gid, timeout=DEFAULT_TTL + 45)
    took = time.monotonic() - killed_at
    _check(srvs[1:], data, pg_url, gid, ran, body)
    assert took < DEFAULT_TTL + 45, took
