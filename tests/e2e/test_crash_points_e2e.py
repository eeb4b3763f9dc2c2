"""Kill the real server at every named crash point mid-sweep, restart it, and check the world.

For each point in `app/reconciler/{runs,groups}.py`: the project and a 6-experiment sweep are
created with the reconciler off; a server armed with `PLX_CRASH_POINTS=<point>` drives the sweep
until the point fires (exit 137, no cleanup: what `kill -9` does); a clean server on the same data
dir (and database) finishes it. Then: exactly the planned experiments, one per suggestion index,
all done, the group done, and each experiment's command ran exactly once (it appends its id to a
shared file).

Every point runs on SQLite; on Postgres too when `PLX_TEST_POSTGRES_URL` is set. `make test` runs a
subset (9 on SQLite, at least one per phase; 3 on Postgres); `pytest -m slow
tests/e2e/test_crash_points_e2e.py` runs them all (the others are skipped without `-m slow`).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.faults import EXIT_CODE
from tests.e2e.conftest import Server, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GROUPS = "/api/v1/admin/p/groups"
N = 6
DONE = {"succeeded", "failed", "stopped", "skipped"}
PG_ENV = "PLX_TEST_POSTGRES_URL"


def _source_points() -> list[str]:
    text = "".join(path.read_text() for path in sorted((ROOT / "app" / "reconciler").glob("*.py")))
    return sorted(set(re.findall(r'crash_point\("([^"]+)"\)', text)))


POINTS = _source_points()
# A later hit where the first one is before anything interesting has happened.
NTH = {
    "runs.after_listing": 4,
    "groups.after_group_committed": 2,
    "runs.start_before_workload": 2,
    "runs.start_after_workload": 3,
    "runs.observe_before_status": 2,
    "runs.observe_after_replica_status": 3,
    "runs.retire_before_cleanup": 2,
}
# Points reached only when a stop is asked, or when the runtime's slots are full.
STOP_POINTS = {"runs.stop_before_signal", "runs.stop_after_signal"}
QUEUE_POINTS = {"runs.queue_before_commit"}
# Run by `make test`: at least one per phase (materialise, release, queue, start, observe, retire,
# stop, finish). The rest run with `-m slow`.
CI_POINTS = {
    "groups.after_materialise_batch",
    "groups.after_release",
    "groups.after_succeeded",
    "runs.queue_before_commit",
    "runs.start_before_queued_commit",
    "runs.start_after_workload",
    "runs.observe_before_commit",
    "runs.retire_before_cleanup",
    "runs.stop_after_signal",
}
# On Postgres (when configured) `make test` runs these; the rest with `-m slow`.
CI_POINTS_PG = {"groups.after_release", "runs.start_after_workload", "runs.observe_before_commit"}


def test_the_source_names_at_least_twenty_points():
    assert len(POINTS) >= 20, POINTS
    assert CI_POINTS_PG <= CI_POINTS <= set(POINTS) and set(NTH) <= set(POINTS)
    assert len(CI_POINTS) >= 8


# -- shared helpers (also used by the replica tests) ----------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for one test, dropped afterwards (skips without Postgres)."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    name = f"plx_e2e_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    server_url = base.rsplit("/", 1)[0]
    admin = f"{server_url}/postgres"  # the URL's own database need not exist
    asyncio.run(_pg_admin(admin, f'CREATE DATABASE "{name}"'))
    yield f"{server_url}/{name}"
    asyncio.run(_pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _pg_fetch(url: str, query: str, *args: object) -> list[tuple]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


def suggestion_indexes(data_dir: Path, database_url: str | None, group_id: int) -> list[int]:
    """The suggestion index of every experiment of the group, read from the database itself."""
    if database_url:
        rows = asyncio.run(
            _pg_fetch(
                database_url,
                "SELECT suggestion_index FROM experiments WHERE experiment_group_id = $1",
                group_id,
            )
        )
    else:
        with sqlite3.connect(data_dir / "plx.db") as conn:
            rows = conn.execute(
                "SELECT suggestion_index FROM experiments WHERE experiment_group_id = ?",
                (group_id,),
            ).fetchall()
    return sorted(r[0] for r in rows)


def sweep_content(ran: Path, n: int, concurrency: int, sleep: float) -> str:
    """A grid of `n` points whose command records its experiment id in `ran` (once per run)."""
    # Runs may execute as other OS users (app/runtimes/isolation.py), who write only their own
    # directories: this file, outside them, is the test's window, open to all.
    ran.touch()
    ran.chmod(0o666)
    values = ", ".join(str(i) for i in range(n))
    cmd = f"echo $PLX_EXPERIMENT_ID >> '{ran}'; sleep {sleep}; exit 0"
    return (
        "version: 1\nkind: group\nhptuning:\n"
        f"  concurrency: {concurrency}\n  matrix: {{x: {{values: [{values}]}}}}\n"
        f'run: {{cmd: "{cmd}"}}\n'
    )


def executions(ran: Path) -> Counter[int]:
    if not ran.exists():
        return Counter()
    return Counter(int(line) for line in ran.read_text().split())


def group_experiments(c: httpx.Client, gid: int) -> list[dict]:
    """The group's experiments: list rows plus their declarations (a separate list shape)."""
    url = f"{GROUPS}/{gid}/experiments"
    rows = c.get(url, params={"limit": 100})
    decl = c.get(url, params={"declarations": "true", "limit": 100})
    assert rows.status_code == 200 and decl.status_code == 200, (rows.text, decl.text)
    by_id = {e["id"]: e["declarations"] for e in decl.json()["results"]}
    return [{**e, "declarations": by_id.get(e["id"])} for e in rows.json()["results"]]


def wait_group_done(c: httpx.Client, gid: int, timeout: float) -> dict:
    """The group once it and all its experiments are done."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = c.get(f"{GROUPS}/{gid}").json()
        if body["last_status"] in DONE and all(
            e["last_status"] in DONE for e in group_experiments(c, gid)
        ):
            return body
        time.sleep(0.2)
    exps = [(e["id"], e["last_status"]) for e in group_experiments(c, gid)]
    raise AssertionError(f"group {gid} not done in {timeout}s: {body}, experiments {exps}")


def live_workloads(data_dir: Path) -> list[str]:
    """Workload state dirs whose wrapper process still runs."""
    from app.runtimes.local import PID_FILE, is_alive, read_json

    alive = []
    for path in (data_dir / "runtime").glob("*"):
        info = read_json(path / PID_FILE) or {}
        if isinstance(info.get("pid"), int) and is_alive(info["pid"], info["start_ticks"]):
            alive.append(path.name)
    return alive


def start_armed(env: dict[str, str], data_dir: Path, points: str) -> Server:
    """A server armed with crash points; it may well die before it answers (that is fine)."""
    srv = Server(data_dir=data_dir, port=free_port(), env={**env, "PLX_CRASH_POINTS": points})
    try:
        srv.start()
    except RuntimeError:
        assert srv.proc is not None and srv.proc.returncode == EXIT_CODE, srv.log.read_text()
    return srv


# -- the crash test -------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_url")


@pytest.mark.slow  # all of them; without `-m slow` only the CI subset runs (the rest skip)
@pytest.mark.parametrize("point", POINTS)
def test_crash_then_restart_finishes_the_sweep_exactly_once(
    request, server, tmp_path, database, point
):
    in_ci = CI_POINTS_PG if database else CI_POINTS
    if point not in in_ci and "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the full set runs with `-m slow`")
    data = tmp_path / "data"
    ran = tmp_path / "ran.txt"
    db = {"database_url": database} if database else {}
    stopping = point in STOP_POINTS
    sleep = 30 if stopping else 0.2

    # 1. project and sweep, with no reconciler: all the sweep's work is left to the armed server
    setup = server(data_dir=data, reconciler_enabled="false", reconcile_interval=0.2, **db)
    with setup.client() as c:
        assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
        r = c.post(GROUPS, json={"content": sweep_content(ran, N, 2, sleep)})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]
    setup.stop()

    # 2. the armed server drives the sweep until the point fires
    env = {**setup.env, "PLX_RECONCILER_ENABLED": "true"}
    if point in QUEUE_POINTS:
        env["PLX_LOCAL_MAX_PARALLEL"] = "1"  # concurrency 2 on one slot: the second one queues
    armed = start_armed(env, data, f"{point}:{NTH.get(point, 1)}")
    try:
        deadline = time.monotonic() + 40
        asked_stop = False
        while armed.proc.poll() is None:
            assert time.monotonic() < deadline, f"{point} never fired"
            if stopping and not asked_stop:
                with armed.client() as c:
                    body = c.get(f"{GROUPS}/{gid}").json()
                    if body["num_running_experiments"] >= 2:
                        assert c.post(f"{GROUPS}/{gid}/stop", json={}).status_code == 200
                        asked_stop = True
            time.sleep(0.05)
        assert armed.proc.returncode == EXIT_CODE, armed.log.read_text()[-3000:]
    finally:
        armed.kill()

    # 3. a clean server on the same data dir and database finishes it
    srv = server(data_dir=data, reconcile_interval=0.2, **db)
    with srv.client() as c:
        body = wait_group_done(c, gid, timeout=60)
        exps = group_experiments(c, gid)
    assert body["num_experiments"] == N and len(exps) == N
    assert sorted(e["declarations"]["x"] for e in exps) == list(range(N))
    assert suggestion_indexes(data, database, gid) == list(range(N))
    counts = executions(ran)
    ids = {e["id"] for e in exps}
    assert set(counts) <= ids, counts
    if stopping:
        assert body["last_status"] == "stopped", body
        assert all(e["last_status"] == "stopped" for e in exps), exps
        assert all(n == 1 for n in counts.values()), counts  # none started twice
        deadline = time.monotonic() + 15
        while live_workloads(data):  # the stop reaches every process, also across the crash
            assert time.monotonic() < deadline, live_workloads(data)
            time.sleep(0.2)
    else:
        assert body["last_status"] == "succeeded", body
        assert body["num_succeeded_experiments"] == N, body
        assert counts == Counter(dict.fromkeys(ids, 1)), counts  # each ran exactly once
