"""Run figures (experiments, metrics, local runs) against a real `plx server`, run by hand.

    .venv/bin/python bench/bench_runs.py [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/plx_bench_runs]

Drops and recreates the database named in --pg, starts `plx server` (local runtime,
PLX_LOCAL_MAX_PARALLEL=8) on a free loopback port and measures with 8 concurrent httpx clients:
create experiment req/s, post one metric req/s, metric points/s in list bodies, get experiment
req/s, list 100 filtered + count p50 over 100,000 bulk-inserted experiments, and the scheduling
overhead per run of 1,000 experiments running `true` 8 at a time: wall time from the first create
request to the last run done, per run, minus the same per-run figure of `bash -c true` spawned 8 at
a time with no server. Prints figures; asserts nothing on time.

`--rows 0` skips the seeding and the list phase, `--runs 0` the run phase, `--lists 0` the list
bodies: e.g. `--creates 200 --metrics 3000 --lists 0 --gets 3000 --rows 0 --runs 0` measures only
the request phases in a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from common import free_port, recreate_database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ADMIN, PASSWORD = "admin", "bench-password-1"
CLIENTS = 8
TRACKING = {"version": 1, "kind": "experiment"}
TRUE_RUN = {"version": 1, "kind": "experiment", "run": {"cmd": "true"}}


async def bulk_insert_experiments(url: str, project: str, count: int) -> float:
    """One INSERT ... SELECT over generate_series: a quarter of the rows are `succeeded`."""
    engine = create_async_engine(url)
    start = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO experiments (user_id, project_id, uuid, created_at, updated_at,"
                " last_status, is_managed, stop_requested, last_metric)"
                " SELECT p.user_id, p.id, md5(random()::text || g::text),"
                " now() - g * interval '1 second', now() - g * interval '1 second',"
                " (ARRAY['succeeded','failed','running','stopped'])[1 + g % 4], false, false,"
                " json_build_object('loss', random())"
                " FROM projects p, generate_series(1, :n) AS g WHERE p.name = :project"
            ),
            {"n": count, "project": project},
        )
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE experiments"))
    await engine.dispose()
    return time.perf_counter() - start


def start_server(url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PLX_DATABASE_URL": url,
        "PLX_DATA_DIR": str(data_dir),
        "PLX_ADMIN_USERNAME": ADMIN,
        "PLX_ADMIN_PASSWORD": PASSWORD,
        "PLX_RUNTIME": "local",
        "PLX_LOCAL_MAX_PARALLEL": str(CLIENTS),
    }
    plx = str(Path(sys.executable).with_name("plx"))
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [plx, "server", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.terminate()
    raise SystemExit((data_dir / "server.log").read_text()[-3000:])


async def concurrently(
    clients: list[httpx.AsyncClient], total: int, one: Callable[[httpx.AsyncClient, int], Awaitable]
) -> float:
    """`total` calls of `one(client, i)` spread over the clients; returns calls per second."""
    per = total // len(clients)

    async def worker(c: httpx.AsyncClient, w: int) -> None:
        for i in range(per):
            await one(c, w * per + i)

    start = time.perf_counter()
    await asyncio.gather(*(worker(c, w) for w, c in enumerate(clients)))
    return per * len(clients) / (time.perf_counter() - start)


def cpu_seconds(pid: int) -> float:
    """utime + stime of the server process: other load on the machine distorts it less."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def expect(r: httpx.Response, code: int) -> None:
    if r.status_code != code:
        raise SystemExit(f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}")


def report_cpu(pid: int, before: float, n: int, unit: str = "request") -> float:
    now = cpu_seconds(pid)
    print(f"  server CPU: {(now - before) * 1000 / max(n, 1):.3f} ms per {unit}")
    return now


def spawn_ms(n: int = 200) -> float:
    """The process spawn itself: `/bin/bash -c true` from Python, sequentially."""
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(["/bin/bash", "-c", "true"], check=True)
    return (time.perf_counter() - start) * 1000 / n


async def parallel_spawn_ms(n: int, parallelism: int) -> float:
    """Wall time per run of `n` `/bin/bash -c true`, `parallelism` at a time, with nothing
    else: the floor a scheduler running them 8 at a time could reach on this machine."""
    gate = asyncio.Semaphore(parallelism)

    async def one() -> None:
        async with gate:
            proc = await asyncio.create_subprocess_exec("/bin/bash", "-c", "true")
            await proc.wait()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return (time.perf_counter() - start) * 1000 / n


async def list_phase(c0: httpx.AsyncClient, pg_url: str, args: argparse.Namespace) -> None:
    """Bulk-inserts --rows experiments into project `big`, then times filtered lists."""
    took = await bulk_insert_experiments(pg_url, "big", args.rows)
    print(f"seeded {args.rows} experiments in {took:.1f} s")
    samples = []
    for path in (
        "/api/v1/admin/big/experiments?limit=100&query=status:succeeded",
        "/api/v1/admin/big/experiments?limit=100&query=status:failed|stopped&offset=500",
        "/api/v1/admin/big/experiments?limit=100&query=metric.loss:<0.5&sort=-metric.loss",
    ):
        one = []
        for _ in range(args.list_samples):
            t0 = time.perf_counter()
            r = await c0.get(path)
            one.append((time.perf_counter() - t0) * 1000)
            expect(r, 200)
        count = r.json()["count"]
        print(f"  {path.split('?')[1]}: p50 {statistics.median(one):.1f} ms, count {count}")
        samples += one
    print(
        f"list 100 filtered + count over {args.rows}: p50 {statistics.median(samples):.1f} ms"
        "  (target <= 40 ms)"
    )


async def run(base_url: str, pg_url: str, args: argparse.Namespace, pid: int) -> None:
    async with httpx.AsyncClient(base_url=base_url) as anon:
        r = await anon.post("/api/v1/users/token", json={"username": ADMIN, "password": PASSWORD})
        headers = {"Authorization": f"token {r.json()['token']}"}
    limits = httpx.Limits(max_connections=1)
    clients = [
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60, limits=limits)
        for _ in range(CLIENTS)
    ]
    c0 = clients[0]
    for name in ("p", "big", "spawn"):
        expect(await c0.post("/api/v1/projects", json={"name": name}), 201)
    x = "/api/v1/admin/p/experiments"
    ids: list[int] = []

    async def create(c: httpx.AsyncClient, _: int) -> None:
        r = await c.post(x, json={"config": TRACKING, "declarations": {"lr": 0.1}})
        expect(r, 201)
        ids.append(r.json()["id"])

    cpu = cpu_seconds(pid)
    rate = await concurrently(clients, args.creates, create)
    print(f"create experiment (tracking-only): {rate:.0f} req/s  (target >= 430)")
    cpu = report_cpu(pid, cpu, args.creates)

    async def metric(c: httpx.AsyncClient, i: int) -> None:
        exp = ids[i * CLIENTS // args.metrics]  # one experiment per client: no lock contention
        r = await c.post(f"{x}/{exp}/metrics", json={"values": {"loss": 0.5, "step": i}})
        expect(r, 201)

    rate = await concurrently(clients, args.metrics, metric)
    print(f"post one metric: {rate:.0f} req/s  (target >= 500)")
    cpu = report_cpu(pid, cpu, args.metrics)

    batch = [{"values": {"loss": 0.1 * k, "acc": 0.5}} for k in range(args.batch)]

    async def metric_list(c: httpx.AsyncClient, i: int) -> None:
        exp = ids[-1 - i % CLIENTS]
        expect(await c.post(f"{x}/{exp}/metrics", json=batch), 201)

    rate = await concurrently(clients, args.lists, metric_list)
    print(f"metric points in list bodies: {rate * args.batch:.0f} points/s  (target >= 20,000)")
    cpu = report_cpu(pid, cpu, args.lists * args.batch, "point")

    async def get(c: httpx.AsyncClient, i: int) -> None:
        expect(await c.get(f"{x}/{ids[i % len(ids)]}"), 200)

    rate = await concurrently(clients, args.gets, get)
    print(f"get experiment: {rate:.0f} req/s  (target >= 600)")
    cpu = report_cpu(pid, cpu, args.gets)

    if args.rows > 0:
        await list_phase(c0, pg_url, args)

    if args.runs <= 0:
        for c in clients:
            await c.aclose()
        return
    spawn = spawn_ms()
    floor = await parallel_spawn_ms(args.runs, CLIENTS)
    runs_path = "/api/v1/admin/spawn/experiments"
    start = time.perf_counter()

    async def create_run(c: httpx.AsyncClient, _: int) -> None:
        expect(await c.post(runs_path, json={"config": TRUE_RUN}), 201)

    rate = await concurrently(clients, args.runs, create_run)
    created = time.perf_counter() - start
    total = args.runs // CLIENTS * CLIENTS
    done_query = f"{runs_path}?limit=1&query=status:succeeded|failed|stopped"
    while True:
        count = (await c0.get(done_query)).json()["count"]
        if count >= total or time.perf_counter() - start > args.runs_timeout:
            break
        await asyncio.sleep(0.2)
    wall = time.perf_counter() - start
    failed = (await c0.get(f"{runs_path}?limit=1&query=status:failed|stopped")).json()["count"]
    per_run = wall * 1000 / max(count, 1)
    slot_ms = per_run * CLIENTS
    print(f"create managed experiment: {rate:.0f} req/s ({total} in {created:.1f} s)")
    print(
        f"{count}/{total} runs of `true` done ({failed} not succeeded) in {wall:.1f} s with "
        f"parallelism {CLIENTS}, counted from the first create request"
    )
    # The figure: wall time per run (runs go 8 at a time) above the spawn itself, i.e.
    # the same commands spawned 8 at a time with no server at all.
    print(
        f"  per run: {per_run:.1f} ms; spawn alone, {CLIENTS} at a time: {floor:.1f} ms per run; "
        f"scheduling overhead {per_run - floor:.1f} ms per run  (target <= 30 ms)"
    )
    print(f"  per run slot (x{CLIENTS}): {slot_ms:.1f} ms; one sequential spawn {spawn:.1f} ms")
    for c in clients:
        await c.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/plx_bench_runs"
    )
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--metrics", type=int, default=4000)
    parser.add_argument("--lists", type=int, default=80)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--gets", type=int, default=4000)
    parser.add_argument(
        "--rows", type=int, default=100_000, help="0 skips the seeding and the list phase"
    )
    parser.add_argument("--list-samples", type=int, default=40)
    parser.add_argument("--runs", type=int, default=1000, help="0 skips the run phase")
    parser.add_argument("--runs-timeout", type=float, default=600)
    args = parser.parse_args()
    asyncio.run(recreate_database(args.pg))
    data_dir = Path(tempfile.mkdtemp(prefix="plx-bench-runs-"))
    port = free_port()
    proc = start_server(args.pg, data_dir, port)
    try:
        asyncio.run(run(f"http://127.0.0.1:{port}", args.pg, args, proc.pid))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"server log: {data_dir / 'server.log'}")


if __name__ == "__main__":
    main()
