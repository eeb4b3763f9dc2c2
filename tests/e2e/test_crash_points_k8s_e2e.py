"""Kill the real server at every crash point the Kubernetes runtime passes through, mid-sweep,
restart it, and check the world: the database and the (fake) cluster.

The fake API server and kubelet run on a thread of this test (`FakeClusterThread`), so they
outlive the `plx server` subprocesses, which reach them through a kubeconfig (`KUBECONFIG`) with
`PLX_RUNTIME=kubernetes`. Per point: the project and a sweep (a shared build, then `N`
experiments at concurrency `C`, pods that end after 0.1 s) are created with the reconciler off;
a server armed with `PLX_CRASH_POINTS=<point>` drives the sweep until the point fires (exit 137,
no cleanup: what `kill -9` does); every pod left in the cluster must then have its row. A clean
server finishes the sweep. Then: exactly `N` experiments, one per suggestion index, every run
done, no pod left, every pod created for a row of the database, one pod per run, and no pod name
POSTed twice (the fake server counts create attempts, 409s included).

Every point of `app/reconciler/{runs,groups}.py` is on the Kubernetes path (the queue step too:
experiments released while their build runs wait as `scheduled`). `make test` runs 3 points on
SQLite and 1 on Postgres (when `PLX_TEST_POSTGRES_URL` is set); `pytest -m slow
tests/e2e/test_crash_points_k8s_e2e.py` runs all of them on both. The sweep is 40 experiments at
concurrency 4 by default; issue #9's 1,000-experiment size: `PLX_CRASH_K8S_EXPERIMENTS=1000
PLX_CRASH_K8S_CONCURRENCY=20 pytest -m slow tests/e2e/test_crash_points_k8s_e2e.py` (about a
minute per case; not for CI).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.faults import EXIT_CODE
from app.k8s.manifests import KEY_ANNOTATION
from app.services.runs import parse_key
from tests.e2e.conftest import K8S_NAMESPACE, Server
from tests.e2e.test_crash_points_e2e import (  # noqa: F401 - pg_url is a fixture used below
    DONE,
    _pg_fetch,
    _source_points,
    pg_url,
    start_armed,
)
from tests.k8s.fake_apiserver_runner import FakeClusterThread

pytestmark = pytest.mark.e2e

NAMESPACE = K8S_NAMESPACE
GROUPS = "/api/v1/admin/p/groups"
N = int(os.environ.get("PLX_CRASH_K8S_EXPERIMENTS", "40"))
CONCURRENCY = int(os.environ.get("PLX_CRASH_K8S_CONCURRENCY", "4"))
FINISH_TIMEOUT = 60 + 0.3 * N
POINTS = _source_points()
# Which hit fires (default the first): later hits crash mid-sweep rather than at the build, the
# first run to start, observe and retire.
NTH = {
    "groups.after_group_committed": 5,
    "groups.before_release": 5,
    "groups.after_release": 5,
    "runs.after_listing": 20,
    "runs.retire_before_stop": 5,
    "runs.retire_before_cleanup": 5,
    "runs.start_before_token": 6,
    "runs.start_before_queued_commit": 6,
    "runs.start_after_queued_commit": 6,
    "runs.start_before_workload": 6,
    "runs.start_after_workload": 6,
    "runs.start_after_all_workloads": 6,
    "runs.observe_before_status": 10,
    "runs.observe_after_replica_status": 10,
    "runs.observe_before_commit": 5,
}
STOP_POINTS = {"runs.stop_before_signal", "runs.stop_after_signal"}
# Run by `make test`; the rest with `-m slow`.
CI_POINTS = {"runs.start_after_workload", "runs.observe_before_commit", "runs.stop_after_signal"}
CI_POINTS_PG = {"runs.start_after_workload"}


def test_the_source_names_at_least_twenty_points():
    assert len(POINTS) >= 20, POINTS
    assert CI_POINTS_PG <= CI_POINTS <= set(POINTS) and set(NTH) <= set(POINTS)


# -- the fake cluster and the database, seen from the test ----------------------------------------


def query(data_dir: Path, database_url: str | None, sql: str) -> list[tuple]:
    """Rows straight from the server's database (no parameters: callers inline integers)."""
    if database_url:
        return asyncio.run(_pg_fetch(database_url, sql))
    with sqlite3.connect(data_dir / "plx.db") as conn:
        return conn.execute(sql).fetchall()


def run_rows(data_dir: Path, database_url: str | None) -> dict[tuple[str, int], tuple[str, str]]:
    """(kind, id) -> (uuid, last_status) of every run the run step drives."""
    rows = {}
    for kind, table in (("experiment", "experiments"), ("build", "build_jobs"), ("job", "jobs")):
        for run_id, uuid, status in query(
            data_dir, database_url, f"SELECT id, uuid, last_status FROM {table}"
        ):
            rows[(kind, run_id)] = (str(uuid).replace("-", ""), status)
    return rows


def row_of_key(key: str, rows: dict[tuple[str, int], tuple[str, str]]) -> tuple[str, int] | None:
    """The run a workload key names, when that run has a row (same id and uuid)."""
    parsed = parse_key(key)
    if parsed is None:
        return None
    kind, run_id, uuid8, _, _ = parsed
    row = rows.get((kind, run_id))
    return (kind, run_id) if row is not None and row[0][:8] == uuid8 else None


def orphan_pods(cluster: FakeClusterThread, rows: dict) -> list[str]:
    """Pods in the cluster whose run has no row."""
    return [
        pod["metadata"]["name"]
        for pod in cluster.pods(NAMESPACE)
        if row_of_key(pod["metadata"]["annotations"][KEY_ANNOTATION], rows) is None
    ]


def sweep_content(n: int, concurrency: int, command: str) -> str:
    values = ", ".join(str(i) for i in range(n))
    return (
        "version: 1\nkind: group\nbuild: {image: 'busybox:1.36'}\nhptuning:\n"
        f"  concurrency: {concurrency}\n  matrix: {{x: {{values: [{values}]}}}}\n"
        f"run: {{cmd: '{command}'}}\n"
    )


def wait_until(check: Callable[[], str | None], timeout: float) -> None:
    """Poll `check` until it answers None; on timeout fail with its last answer."""
    deadline = time.monotonic() + timeout
    while (problem := check()) is not None:
        assert time.monotonic() < deadline, f"not done in {timeout}s: {problem}"
        time.sleep(0.2)


# -- the crash test -------------------------------------------------------------------------------


def running_experiment_pods(cluster: FakeClusterThread) -> list[str]:
    return [
        pod["metadata"]["name"]
        for pod in cluster.pods(NAMESPACE)
        if pod["status"].get("phase") == "Running"
        and pod["metadata"]["annotations"][KEY_ANNOTATION].startswith("experiment-")
    ]


def drive_until_crash(
    armed: Server, cluster: FakeClusterThread, gid: int, point: str, stopping: bool
) -> None:
    """Wait for the armed server to exit at its point; for a stop point, ask the group to stop
    once two experiment pods run (so that there are workloads to signal)."""
    deadline = time.monotonic() + FINISH_TIMEOUT
    asked_stop = False
    while armed.proc.poll() is None:
        if time.monotonic() > deadline:
            pods = [
                (p["metadata"]["name"], p["status"].get("phase")) for p in cluster.pods(NAMESPACE)
            ]
            raise AssertionError(f"{point} never fired (stop asked: {asked_stop}; pods {pods})")
        if stopping and not asked_stop and len(running_experiment_pods(cluster)) >= 2:
            try:
                with armed.client() as c:
                    assert c.post(f"{GROUPS}/{gid}/stop", json={}).status_code == 200
                    asked_stop = True
            except httpx.TransportError:
                pass  # it fired meanwhile
        time.sleep(0.05)
    assert armed.proc.returncode == EXIT_CODE, armed.log.read_text()[-3000:]


def create_sweep(setup: Server, command: str) -> int:
    with setup.client() as c:
        assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        r = c.post(GROUPS, json={"content": sweep_content(N, CONCURRENCY, command)})
        assert r.status_code == 201, r.text
        return r.json()["id"]


def group_status(data_dir: Path, database_url: str | None, gid: int) -> str:
    sql = f"SELECT last_status FROM experiment_groups WHERE id = {gid}"
    return query(data_dir, database_url, sql)[0][0]


def sweep_unfinished(
    cluster: FakeClusterThread, data_dir: Path, database_url: str | None, gid: int
) -> str | None:
    """None once the group and every run are done and no pod is left; else what is not."""
    group = group_status(data_dir, database_url, gid)
    busy = {k: s for k, (_, s) in run_rows(data_dir, database_url).items() if s not in DONE}
    pods = [p["metadata"]["name"] for p in cluster.pods(NAMESPACE)]
    if group in DONE and not busy and not pods:
        return None
    return f"group {group}, runs not done {busy}, pods left {pods}"


def assert_one_pod_per_run(
    cluster: FakeClusterThread, rows: dict[tuple[str, int], tuple[str, str]], every_run: bool
) -> None:
    """Every pod ever created belongs to a row, no run got two, no name was POSTed twice; with
    `every_run`, each run got its pod."""
    created = cluster.created_pod_keys()
    runs_of_pods = [row_of_key(key, rows) for key in created.values()]
    assert None not in runs_of_pods, created
    assert len(runs_of_pods) == len(set(runs_of_pods)), created
    attempts = cluster.pod_create_attempts()
    assert set(attempts.values()) == {1}, attempts
    if every_run:
        assert set(runs_of_pods) == set(rows), (created, rows)


@pytest.mark.slow  # all of them; without `-m slow` only the CI subset runs (the rest skip)
@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_crash_on_kubernetes_then_restart_finishes_the_sweep_exactly_once(
    request, tmp_path, backend, point
):
    in_ci = CI_POINTS_PG if backend == "postgres" else CI_POINTS
    if point not in in_ci and "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the full set runs with `-m slow`")
    # Requested only now, so that a skipped case makes no database and no cluster; the servers
    # last, so that they stop before the cluster goes.
    database = request.getfixturevalue("pg_url") if backend == "postgres" else None
    fake_cluster = request.getfixturevalue("fake_cluster")
    server = request.getfixturevalue("server")
    data = tmp_path / "data"
    db = {"database_url": database} if database else {}
    stopping = point in STOP_POINTS
    k8s = {"runtime": "kubernetes", "k8s_namespace": NAMESPACE, "k8s_resync_seconds": 2}

    # 1. project and sweep, with no reconciler: all the sweep's work is left to the armed server
    setup = server(data_dir=data, reconciler_enabled="false", reconcile_interval=0.1, **k8s, **db)
    gid = create_sweep(setup, "sleep 60" if stopping else "sleep 0.1")
    setup.stop()

    # 2. the armed server drives the sweep until the point fires; every pod it left in the
    # cluster belongs to a row it committed
    env = {**setup.env, "PLX_RECONCILER_ENABLED": "true"}
    armed = start_armed(env, data, f"{point}:{NTH.get(point, 1)}")
    try:
        drive_until_crash(armed, fake_cluster, gid, point, stopping)
    finally:
        armed.kill()
    assert orphan_pods(fake_cluster, run_rows(data, database)) == []

    # 3. a clean server on the same data dir, database and cluster finishes the sweep
    server(data_dir=data, reconcile_interval=0.1, **k8s, **db)
    wait_until(lambda: sweep_unfinished(fake_cluster, data, database, gid), FINISH_TIMEOUT)

    # 4. exactly N experiments, one per suggestion index, all done; one pod per run
    sql = f"SELECT suggestion_index FROM experiments WHERE experiment_group_id = {gid}"
    assert sorted(i for (i,) in query(data, database, sql)) == list(range(N))
    rows = run_rows(data, database)
    experiments = {k: s for k, (_, s) in rows.items() if k[0] == "experiment"}
    builds = {k: s for k, (_, s) in rows.items() if k[0] == "build"}
    assert len(experiments) == N and list(builds.values()) == ["succeeded"], rows
    expected = "stopped" if stopping else "succeeded"
    assert group_status(data, database, gid) == expected
    assert set(experiments.values()) == {expected}, experiments
    assert_one_pod_per_run(fake_cluster, rows, every_run=not stopping)
