"""`/healthz` latency while logins arrive in bursts (issue 16.6).

Starts `plx server` (SQLite, fake runtime) from the checkout given by `--src` (default: this
one) on a free port, then measures sequential `/healthz` latency, idle and while `--logins`
concurrent clients log in over and over (half of them with a wrong password), and the same with
`--anonymous` clients posting 4 MiB bodies without credentials. Run it on two checkouts to
compare:

    .venv/bin/python bench/bench_login_burst.py --src /work/main
    .venv/bin/python bench/bench_login_burst.py
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
from common import free_port

ADMIN = ("admin", "bench-password-1")


def start(src: Path, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "PLX_DATA_DIR": str(data_dir),
        "PLX_RUNTIME": "fake",
        "PLX_ADMIN_USERNAME": ADMIN[0],
        "PLX_ADMIN_PASSWORD": ADMIN[1],
        # The limit of failed logins would turn most of the burst into cheap 429s.
        "PLX_LOGIN_FAILURES_PER_MINUTE": "0",
    }
    log = (data_dir / "server.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "server", "--port", str(port)],
        cwd=src,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as c:
        for _ in range(300):
            try:
                if (await c.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not come up")


async def health_latencies(url: str, seconds: float) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=url) as c:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            r = await c.get("/healthz")
            out.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 200
            await asyncio.sleep(0.01)
    return out


async def login_loop(url: str, wrong: bool, stop: asyncio.Event, done: list[int]) -> None:
    body = {"username": ADMIN[0], "password": "nope" if wrong else ADMIN[1]}
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        while not stop.is_set():
            r = await c.post("/api/v1/users/token", json=body)
            done.append(r.status_code)


async def anonymous_loop(url: str, stop: asyncio.Event, done: list[int]) -> None:
    body = b"x" * (4 * 1024 * 1024)
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        while not stop.is_set():
            r = await c.post("/api/v1/projects", content=body)
            done.append(r.status_code)


def summary(name: str, values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return (
        f"{name:<34} n={len(values):4d}  p50 {statistics.median(values):7.1f} ms"
        f"  p99 {p99:7.1f} ms  max {values[-1]:7.1f} ms"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc), which other load distorts less."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def under_load(
    url: str, pid: int, seconds: float, loops: list
) -> tuple[list[float], list[int], float]:
    """/healthz latencies while `loops` run, their status codes, and the server's CPU time per
    request of theirs in ms (the /healthz polls included)."""
    stop, done = asyncio.Event(), []
    tasks = [asyncio.create_task(make(url, stop, done)) for make in loops]
    await asyncio.sleep(0.5)  # the burst is on
    cpu, count = cpu_seconds(pid), len(done)
    latencies = await health_latencies(url, seconds)
    cpu, count = cpu_seconds(pid) - cpu, len(done) - count
    stop.set()
    await asyncio.gather(*tasks)
    return latencies, done, cpu * 1000 / max(1, count)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--logins", type=int, default=18)
    parser.add_argument("--anonymous", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start(args.src.resolve(), Path(tmp), port)
        try:
            await wait_up(url)
            print(f"server from {args.src}")
            print(summary("idle", await health_latencies(url, args.seconds / 2)))
            logins = [
                (lambda u, s, d, w=(i % 2 == 1): login_loop(u, w, s, d)) for i in range(args.logins)
            ]
            lat, done, cpu = await under_load(url, proc.pid, args.seconds, logins)
            print(summary(f"{args.logins} clients logging in", lat), f"({len(done)} logins)")
            anon = [anonymous_loop] * args.anonymous
            lat, done, cpu = await under_load(url, proc.pid, args.seconds, anon)
            print(
                summary(f"{args.anonymous} anonymous 4 MiB posts", lat),
                f"({len(done)} posts, {sorted(set(done))}, {cpu:.1f} ms server CPU per post)",
            )
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
