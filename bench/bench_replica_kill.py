"""Two replicas, one SIGKILLed mid-sweep: does the survivor finish, running each experiment once?

    .venv/bin/python bench/bench_replica_kill.py [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/plx_bench_kill]
        [--n 500] [--concurrency 8] [--kill-at 200] [--sleep 0.2] [--timeout 900]

Issue 15 item 4. Drops and recreates the database named in --pg, starts two `plx server` replicas
(local runtime, PLX_LOCAL_MAX_PARALLEL = concurrency) on that database and one shared
PLX_DATA_DIR, creates a grid group of --n experiments with --concurrency whose command appends
its experiment id to a shared file and sleeps --sleep seconds, SIGKILLs the first replica when
--kill-at experiments have succeeded, and follows the sweep on the survivor until the group and
every experiment are done. Prints: time to the kill, time from the kill to the end, experiment
statuses, how many times each experiment ran (must be exactly once), and the errors in the
survivor's log. Exits 1 when the sweep did not finish or an experiment did not run exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import free_port, recreate_database

ADMIN, PASSWORD = "admin", "bench-password-1"
GROUPS = "/api/v1/admin/p/groups"
DONE = {"succeeded", "failed", "stopped", "skipped"}


def start_replica(
    data: Path, url: str, concurrency: int, name: str
) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = data.parent / f"{name}.log"
    env = {
        **os.environ,
        "PLX_DATA_DIR": str(data),
        "PLX_DATABASE_URL": url,
        "PLX_ADMIN_USERNAME": ADMIN,
        "PLX_ADMIN_PASSWORD": PASSWORD,
        "PLX_RECONCILE_INTERVAL": "0.5",
        "PLX_LOCAL_MAX_PARALLEL": str(concurrency),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "server", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            r = httpx.post(
                f"{base}/api/v1/users/token", json={"username": ADMIN, "password": PASSWORD}
            )
            if r.status_code == 200:
                return proc, base, log
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise SystemExit(f"{name} did not come up: {log.read_text()[-3000:]}")


def client(base: str) -> httpx.Client:
    token = httpx.post(
        f"{base}/api/v1/users/token", json={"username": ADMIN, "password": PASSWORD}
    ).json()["token"]
    return httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"token {token}"})


def sweep(ran: Path, n: int, concurrency: int, sleep: float) -> str:
    values = ", ".join(str(i) for i in range(n))
    cmd = f"echo $PLX_EXPERIMENT_ID >> '{ran}'; sleep {sleep}; exit 0"
    return (
        "version: 1\nkind: group\nhptuning:\n"
        f"  concurrency: {concurrency}\n  matrix: {{x: {{values: [{values}]}}}}\n"
        f'run: {{cmd: "{cmd}"}}\n'
    )


def experiments(c: httpx.Client, gid: int) -> list[dict]:
    found: list[dict] = []
    while True:
        r = c.get(f"{GROUPS}/{gid}/experiments", params={"limit": 1000, "offset": len(found)})
        page = r.json()["results"]
        found += page
        if len(page) < 1000:
            return found


def executions(ran: Path) -> collections.Counter[int]:
    if not ran.exists():
        return collections.Counter()
    return collections.Counter(int(line) for line in ran.read_text().split())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/plx_bench_kill"
    )
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kill-at", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    asyncio.run(recreate_database(args.pg))
    work = Path(tempfile.mkdtemp(prefix="plx-bench-kill-"))
    data, ran = work / "data", work / "ran.txt"
    data.mkdir()
    # One after the other: the first migrates the database.
    first, first_url, _ = start_replica(data, args.pg, args.concurrency, "replica-1")
    second, second_url, second_log = start_replica(data, args.pg, args.concurrency, "replica-2")
    try:
        with client(first_url) as c:
            assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201
            began = time.monotonic()
            r = c.post(GROUPS, json={"content": sweep(ran, args.n, args.concurrency, args.sleep)})
            assert r.status_code == 201, r.text
            gid = r.json()["id"]
            while c.get(f"{GROUPS}/{gid}").json()["num_succeeded_experiments"] < args.kill_at:
                if time.monotonic() - began > args.timeout:
                    raise SystemExit("the sweep did not reach the kill point")
                time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed = time.monotonic()
        with client(second_url) as c:
            at_kill = collections.Counter(e["last_status"] for e in experiments(c, gid))
            finished = False
            while time.monotonic() - killed < args.timeout:
                group = c.get(f"{GROUPS}/{gid}").json()
                exps = experiments(c, gid)
                if group["last_status"] in DONE and all(e["last_status"] in DONE for e in exps):
                    finished = True
                    break
                time.sleep(0.5)
            ended = time.monotonic()
            statuses = collections.Counter(e["last_status"] for e in exps)
            ids = {e["id"] for e in exps}
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    runs = executions(ran)
    twice = {i: n for i, n in runs.items() if n > 1}
    never = ids - set(runs)
    log_text = second_log.read_text(errors="replace")
    print(f"experiments {args.n}, concurrency {args.concurrency}, sleep {args.sleep} s")
    print(
        f"kill of replica 1 after {args.kill_at} succeeded: {killed - began:.1f} s after the create"
    )
    print(f"statuses at the kill: {dict(at_kill)}")
    print(
        f"survivor finished: {finished}, {ended - killed:.1f} s after the kill "
        f"(whole sweep {ended - began:.1f} s)"
    )
    print(f"group: {group['last_status']}, experiments: {dict(statuses)}")
    print(
        f"ran exactly once: {sum(1 for n in runs.values() if n == 1)} of {len(ids)}; "
        f"twice or more: {len(twice)}; never: {len(never)}"
    )
    print(
        f"survivor log: {log_text.count('Traceback')} tracebacks, "
        f"{log_text.count('FileNotFoundError')} FileNotFoundError, "
        f"{log_text.count('failed (')} per-workload failures logged"
    )
    print(f"work dir: {work}")
    ok = finished and not twice and not never and statuses.get("succeeded") == args.n
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
