"""Soak: mixed traffic at a steady rate against one `plx server`, with a sweep always running.

By hand, not in CI, loopback only:

    .venv/bin/python bench/soak.py --minutes 30          # starts its own server (SQLite)
    .venv/bin/python bench/soak.py --pg postgresql+asyncpg://postgres@127.0.0.1:5432/plx_soak
    .venv/bin/python bench/soak.py --url http://127.0.0.1:8000 --pid 1234 --user admin --password x

Traffic (weights in MIX): project creates, experiment creates, metric posts, gets, lists, and a few
clients following the project's change feed with long-polls. A grid sweep of short commands runs
the whole time (a new one starts when the last ends). Every `--every` seconds it prints requests,
achieved rate, errors, p50/p95 latency and the server's RSS (VmRSS of /proc/<pid>/status); at the
end a summary with the error count and the RSS trend (goal: 0 errors, flat memory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from common import free_port, recreate_database

ADMIN = ("admin", "soak-password-1")
PROJECT = "soak"
MIX = {  # operation -> weight
    "create_experiment": 10,
    "post_metric": 30,
    "get_experiment": 20,
    "get_project": 10,
    "list_experiments": 15,
    "list_groups": 5,
    "get_group": 5,
    "create_project": 5,
}
TRACKING = "version: 1\nkind: experiment\n"  # no `run`: a tracking-only experiment
SWEEP = """version: 1
kind: group
hptuning:
  concurrency: 2
  matrix: {x: {values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}}
run: {cmd: "sleep 0.5; exit 0"}
"""


@dataclass
class Stats:
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # this window, seconds
    events_seen: int = 0
    sweeps: int = 0

    def record(self, label: str, started: float, status: int | str, ok: set[int]) -> None:
        self.requests += 1
        self.latencies.append(time.perf_counter() - started)
        if status not in ok:
            self.errors[f"{label}:{status}"] += 1


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of the process (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")




def start_server(data_dir: Path, pg: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "PLX_DATA_DIR": str(data_dir),
        "PLX_ADMIN_USERNAME": ADMIN[0],
        "PLX_ADMIN_PASSWORD": ADMIN[1],
        "PLX_RATE_LIMIT_PER_MINUTE": "0",
        "PLX_RECONCILE_INTERVAL": "1",
    }
    env.pop("PLX_DATABASE_URL", None)
    if pg:
        env["PLX_DATABASE_URL"] = pg
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}"




async def login(url: str, user: str, password: str, proc: subprocess.Popen | None) -> str:
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(base_url=url, timeout=5) as c:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            try:
                body = {"username": user, "password": password}
                r = await c.post("/api/v1/users/token", json=body)
                if r.status_code == 200:
                    return r.json()["token"]
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("server did not come up")


class Soak:
    def __init__(self, c: httpx.AsyncClient, user: str, stats: Stats) -> None:
        self.c, self.user, self.stats = c, user, stats
        self.base = f"/api/v1/{user}/{PROJECT}"
        self.experiments: list[int] = []
        self.groups: list[int] = []
        self.seq = 0

    async def call(self, label: str, method: str, url: str, ok: set[int], **kw) -> httpx.Response:
        started = time.perf_counter()
        try:
            r = await self.c.request(method, url, **kw)
        except httpx.HTTPError as exc:
            self.stats.record(label, started, type(exc).__name__, ok)
            raise
        self.stats.record(label, started, r.status_code, ok)
        return r

    async def setup(self) -> None:
        r = await self.c.post("/api/v1/projects", json={"name": PROJECT})
        if r.status_code not in (201, 400, 409):
            raise SystemExit(f"cannot create the project: {r.status_code} {r.text}")
        for _ in range(5):
            await self.op("create_experiment")

    async def op(self, name: str) -> None:
        self.seq += 1
        if name in ("post_metric", "get_experiment") and not self.experiments:
            name = "create_experiment"
        if name == "create_experiment":
            r = await self.call("create_experiment", "POST", f"{self.base}/experiments", {201},
                                json={"config": TRACKING})
            if r.status_code == 201:
                self.experiments.append(r.json()["id"])
                del self.experiments[:-200]  # keep the working set bounded
        elif name == "post_metric":
            exp = random.choice(self.experiments)
            body = {"values": {"loss": random.random(), "step": float(self.seq)}}
            await self.call("post_metric", "POST", f"{self.base}/experiments/{exp}/metrics", {201},
                            json=body)
        elif name == "get_experiment":
            exp = random.choice(self.experiments)
            await self.call("get_experiment", "GET", f"{self.base}/experiments/{exp}", {200})
        elif name == "get_project":
            await self.call("get_project", "GET", self.base, {200})
        elif name == "list_experiments":
            await self.call("list_experiments", "GET", f"{self.base}/experiments", {200},
                            params={"limit": 20, "sort": "-created_at"})
        elif name == "list_groups":
            await self.call("list_groups", "GET", f"{self.base}/groups", {200})
        elif name == "get_group" and self.groups:
            await self.call("get_group", "GET", f"{self.base}/groups/{self.groups[-1]}", {200})
        elif name == "create_project":
            name_ = f"soak-{os.getpid()}-{self.seq}"
            r = await self.call("create_project", "POST", "/api/v1/projects", {201},
                                json={"name": name_})
            if r.status_code == 201:  # keep the user's project count flat
                await self.call("delete_project", "DELETE", f"/api/v1/{self.user}/{name_}",
                                {200, 204})

    async def sweeper(self, stop: asyncio.Event) -> None:
        """Keep one sweep running: start another when the last one is done."""
        while not stop.is_set():
            if self.groups:
                r = await self.call("get_group", "GET", f"{self.base}/groups/{self.groups[-1]}",
                                    {200})
                running = r.status_code == 200 and r.json()["last_status"] in (
                    "created", "running"
                )
            else:
                running = False
            if not running:
                r = await self.call("create_group", "POST", f"{self.base}/groups", {201},
                                    json={"content": SWEEP})
                if r.status_code == 201:
                    self.groups.append(r.json()["id"])
                    self.stats.sweeps += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2)

    async def follower(self, stop: asyncio.Event, wait: float) -> None:
        """Follow the change feed with long-polls, as a client showing progress would."""
        cursor = None
        while not stop.is_set():
            params = {"wait": wait, "limit": 500}
            if cursor:
                params["after"] = cursor
            try:
                r = await self.call("events", "GET", f"{self.base}/events", {200},
                                    params=params, timeout=wait + 30)
            except httpx.HTTPError:
                await asyncio.sleep(1)
                continue
            if r.status_code == 200:
                page = r.json()
                cursor = page["next"]
                self.stats.events_seen += len(page["results"])
            else:
                await asyncio.sleep(1)


async def paced(soak: Soak, stop: asyncio.Event, rate: float, workers: int) -> None:
    """Issue operations at `rate` per second overall (open loop, at most `workers` in flight)."""
    names, weights = list(MIX), list(MIX.values())
    slots = asyncio.Semaphore(workers)
    tasks: set[asyncio.Task] = set()
    interval = 1.0 / rate
    next_at = time.perf_counter()

    async def one(name: str) -> None:
        try:
            await soak.op(name)
        except httpx.HTTPError:
            pass  # counted as an error in call()
        finally:
            slots.release()

    while not stop.is_set():
        now = time.perf_counter()
        if now < next_at:
            await asyncio.sleep(next_at - now)
        next_at += interval
        await slots.acquire()
        task = asyncio.create_task(one(random.choices(names, weights)[0]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def soak(args: argparse.Namespace, url: str, token: str, pid: int | None) -> int:
    stats = Stats()
    # Idle connections are dropped well before uvicorn's 5 s keep-alive timeout: reusing one the
    # server is closing at that moment fails with a ReadError that is no fault of the server.
    limits = httpx.Limits(
        max_connections=args.workers + 8, max_keepalive_connections=args.workers,
        keepalive_expiry=2.0,
    )
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as c:
        s = Soak(c, args.user, stats)
        await s.setup()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(paced(s, stop, args.rate, args.workers))]
        tasks.append(asyncio.create_task(s.sweeper(stop)))
        tasks += [asyncio.create_task(s.follower(stop, 5.0)) for _ in range(args.followers)]
        started = time.monotonic()
        end = started + args.minutes * 60
        last_n, last_t = 0, started
        last_cpu = cpu_seconds(pid) if pid else None
        rss_series: list[tuple[float, int]] = []
        print(f"soak: {url}, {args.minutes} min at {args.rate:g} req/s target, pid {pid}")
        print(f"{'t(s)':>6} {'reqs':>8} {'req/s':>7} {'errors':>6} {'p50ms':>7} {'p95ms':>7} "
              f"{'rss MiB':>8} {'cpu%':>5} {'events':>7} {'sweeps':>6}")
        while time.monotonic() < end:
            await asyncio.sleep(min(args.every, max(0.0, end - time.monotonic())))
            now = time.monotonic()
            rss = rss_kib(pid) if pid else None
            if rss is not None:
                rss_series.append((now - started, rss))
            window = stats.latencies
            stats.latencies = []
            cpu = cpu_seconds(pid) if pid else None
            busy = "-"  # the server's CPU use: near 100 means it, not the client, is the limit
            if cpu is not None and last_cpu is not None:
                busy = f"{100 * (cpu - last_cpu) / max(now - last_t, 1e-9):.0f}"
            last_cpu = cpu
            rate = (stats.requests - last_n) / max(now - last_t, 1e-9)
            last_n, last_t = stats.requests, now
            rss_text = f"{rss / 1024:8.1f}" if rss is not None else f"{'-':>8}"
            print(f"{now - started:6.0f} {stats.requests:8d} {rate:7.1f} "
                  f"{sum(stats.errors.values()):6d} {pct(window, 0.5):7.1f} "
                  f"{pct(window, 0.95):7.1f} {rss_text} {busy:>5} {stats.events_seen:7d} "
                  f"{stats.sweeps:6d}", flush=True)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.monotonic() - started
    errors = sum(stats.errors.values())
    print(f"\nrequests {stats.requests} in {elapsed:.0f} s = {stats.requests / elapsed:.1f} req/s; "
          f"errors {errors}; change-feed events seen {stats.events_seen}; sweeps {stats.sweeps}")
    if stats.errors:
        print("errors by operation:status:", dict(+stats.errors))
    if len(rss_series) >= 2:
        first, last = rss_series[0][1], rss_series[-1][1]
        peak = max(v for _, v in rss_series)
        print(f"server RSS: first {first / 1024:.1f} MiB, last {last / 1024:.1f} MiB, "
              f"peak {peak / 1024:.1f} MiB, change {(last - first) / 1024:+.1f} MiB")
    return 1 if errors else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=220.0, help="target requests per second")
    p.add_argument("--workers", type=int, default=32, help="requests in flight at most")
    p.add_argument("--followers", type=int, default=2, help="change-feed long-pollers")
    p.add_argument("--every", type=float, default=10.0, help="report period, seconds")
    p.add_argument("--url", help="a running server (loopback only); default: start one")
    p.add_argument("--pid", type=int, help="the running server's pid, for its RSS")
    p.add_argument("--user", default=ADMIN[0])
    p.add_argument("--password", default=ADMIN[1])
    p.add_argument("--pg", help="own server on this Postgres database (dropped and recreated)")
    args = p.parse_args()
    if args.rate <= 0 or args.minutes <= 0:
        p.error("--rate and --minutes must be positive")
    proc = None
    if args.url:
        if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
            p.error("loopback only: --url must be on 127.0.0.1 / localhost")
        url, pid = args.url.rstrip("/"), args.pid
    else:
        if args.pg:
            asyncio.run(recreate_database(args.pg))
        data_dir = Path(tempfile.mkdtemp(prefix="plx-soak-"))
        proc, url = start_server(data_dir, args.pg)
        pid = proc.pid
        print(f"server log: {data_dir / 'server.log'}")
    try:
        token = asyncio.run(login(url, args.user, args.password, proc))
        return asyncio.run(soak(args, url, token, pid))
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())
