"""Project API figures against a real `plx server` on PostgreSQL, run by hand; no time asserts.

    .venv/bin/python bench/bench_api.py [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/plx_bench]

Drops and recreates the database named in --pg, starts `plx server` on a free port, then measures
create project (8 concurrent clients), get project p50 (one sequential client) and list 100
projects with count when the listed user owns 100k projects (sequential and 8 concurrent).
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
from pathlib import Path

import httpx
from common import free_port, recreate_database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ADMIN, PASSWORD = "admin", "bench-password-1"
CLIENTS = 8






async def bulk_insert_projects(url: str, user_id: int, count: int) -> float:
    """One INSERT ... SELECT over generate_series: 100k rows in about a second."""
    engine = create_async_engine(url)
    start = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO projects (user_id, name, uuid, is_public, created_at, updated_at)"
                " SELECT :uid, 'p' || g, md5(random()::text || g::text), g % 2 = 0,"
                " now() - g * interval '1 second', now() - g * interval '1 second'"
                " FROM generate_series(1, :n) AS g"
            ),
            {"uid": user_id, "n": count},
        )
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE projects"))
    await engine.dispose()
    return time.perf_counter() - start


def start_server(url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PLX_DATABASE_URL": url,
        "PLX_DATA_DIR": str(data_dir),
        "PLX_ADMIN_USERNAME": ADMIN,
        "PLX_ADMIN_PASSWORD": PASSWORD,
        "PLX_RUNTIME": "fake",
    }
    plx = str(Path(sys.executable).with_name("plx"))
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [plx, "server", "--port", str(port), "--log-level", "warning"],
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


class CpuMeter:
    """CPU seconds the server process spent: a figure that other load on the machine bends less."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/stat")
        self.tick = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float:
        fields = self.path.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime

    def per_request(self, since: float, requests: int) -> str:
        used = (self.seconds() - since) / requests
        return f"server CPU {used * 1000:.2f} ms/request (~{1 / used:.0f} req/s per core)"


def ms(values: list[float]) -> str:
    values = sorted(values)
    p50 = statistics.median(values) * 1000
    p95 = values[int(len(values) * 0.95) - 1] * 1000
    return f"p50 {p50:.2f} ms, p95 {p95:.2f} ms (n={len(values)})"


async def timed_gets(client: httpx.AsyncClient, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        r = await client.get(path)
        out.append(time.perf_counter() - start)
        assert r.status_code == 200, r.text
    return out


async def run(
    base_url: str, pg_url: str, cpu: CpuMeter, creates: int, gets: int, lists: int
) -> None:
    r = httpx.post(f"{base_url}/api/v1/users/token", json={"username": ADMIN, "password": PASSWORD})
    headers = {"Authorization": f"token {r.json()['token']}"}
    clients = [httpx.AsyncClient(base_url=base_url, headers=headers) for _ in range(CLIENTS)]
    try:
        # Warm up each connection.
        await asyncio.gather(*(c.get("/api/v1/users") for c in clients))

        async def create(c: httpx.AsyncClient, worker: int) -> None:
            for i in range(worker, creates, CLIENTS):
                r = await c.post("/api/v1/projects", json={"name": f"proj-{i}"})
                assert r.status_code == 201, r.text

        cpu0, start = cpu.seconds(), time.perf_counter()
        await asyncio.gather(*(create(c, w) for w, c in enumerate(clients)))
        elapsed = time.perf_counter() - start
        print(f"create project, {CLIENTS} clients: {creates / elapsed:.0f} req/s "
              f"({creates} in {elapsed:.2f} s); {cpu.per_request(cpu0, creates)}")

        one = clients[0]
        await timed_gets(one, "/api/v1/admin/proj-1", 50)
        cpu0 = cpu.seconds()
        timings = await timed_gets(one, "/api/v1/admin/proj-1", gets)
        print(f"get project, sequential: {ms(timings)}; {cpu.per_request(cpu0, gets)}")

        r = await one.post(
            "/api/v1/users", json={"username": "bulk", "password": "bulk-password-1"}
        )
        assert r.status_code == 201, r.text
        seeded = await bulk_insert_projects(pg_url, r.json()["id"], 100_000)
        print(f"seeded 100k projects in {seeded:.2f} s")
        path = "/api/v1/bulk?limit=100"
        first = (await one.get(path)).json()
        assert first["count"] == 100_000 and len(first["results"]) == 100
        await timed_gets(one, path, 20)
        cpu0 = cpu.seconds()
        timings = await timed_gets(one, path, lists)
        print(f"list 100 of 100k with count, sequential: {ms(timings)}; "
              f"{cpu.per_request(cpu0, lists)}")
        per = max(1, lists // CLIENTS)
        batches = await asyncio.gather(*(timed_gets(c, path, per) for c in clients))
        print(f"list 100 of 100k with count, {CLIENTS} clients: "
              f"{ms([t for b in batches for t in b])}")
        deep = f"{path}&offset=50000"
        print(f"list 100 at offset 50000, sequential: {ms(await timed_gets(one, deep, 100))}")
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/plx_bench")
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--gets", type=int, default=1000)
    parser.add_argument("--lists", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(recreate_database(args.pg))
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="plx-bench-") as tmp:
        proc = start_server(args.pg, Path(tmp), port)
        try:
            print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            asyncio.run(
                run(
                    f"http://127.0.0.1:{port}",
                    args.pg,
                    CpuMeter(proc.pid),
                    args.creates,
                    args.gets,
                    args.lists,
                )
            )
            print(f"load average after: {os.getloadavg()[0]:.1f}")
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
