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
from multiprocessing import Process, Queue
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
        f"{name:<34} n={len(values):4d}  mean {statistics.fmean(values):6.1f}"
        f"  p50 {statistics.median(values):6.1f} ms"
        f"  p99 {p99:7.1f} ms  max {values[-1]:7.1f} ms"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc), which other load distorts less."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _generate(url: str, kind: str, clients: int, stop_at: float, out: Queue) -> None:
    """In a process of its own (so that the client side does not slow the /healthz poller):
    `clients` loops of `kind` until `stop_at`; puts the status codes and the server CPU
    measured while they ran."""

    async def run() -> list[int]:
        stop, done = asyncio.Event(), []
        if kind == "login":
            loops = [login_loop(url, i % 2 == 1, stop, done) for i in range(clients)]
        else:
            loops = [anonymous_loop(url, stop, done) for _ in range(clients)]
        tasks = [asyncio.create_task(loop) for loop in loops]
        await asyncio.sleep(max(0.0, stop_at - time.time()))
        stop.set()
        await asyncio.gather(*tasks)
        return done

    out.put(asyncio.run(run()))


async def under_load(
    url: str, pid: int, seconds: float, kind: str, clients: int
) -> tuple[list[float], list[int], float]:
    """/healthz latencies while `clients` loops of `kind` run in another process, their status
    codes, and the server's CPU time per request of theirs in ms (/healthz polls included)."""
    out: Queue = Queue()
    generator = Process(target=_generate, args=(url, kind, clients, time.time() + seconds + 1, out))
    generator.start()
    await asyncio.sleep(0.5)  # the burst is on
    cpu = cpu_seconds(pid)
    latencies = await health_latencies(url, seconds)
    cpu = cpu_seconds(pid) - cpu
    done = await asyncio.to_thread(out.get)
    generator.join()
    return latencies, done, cpu * 1000 / max(1, len(done))


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
            lat, done, cpu = await under_load(url, proc.pid, args.seconds, "login", args.logins)
            print(summary(f"{args.logins} clients logging in", lat), f"({len(done)} logins)")
            lat, done, cpu = await under_load(url, proc.pid, args.seconds, "post", args.anonymous)
            print(
                summary(f"{args.anonymous} anonymous 4 MiB posts", lat),
                f"({len(done)} posts, {sorted(set(done))}, {cpu:.1f} ms server CPU per post)",
            )
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
