"""The reconciler driving a sweep onto the fake Kubernetes API server, by hand:

    .venv/bin/python bench/bench_k8s_reconciler.py [--experiments 1000] [--no-kubelet]
        [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/plx_bench_k8s]

The real app (SQLite in a temp dir, or the Postgres database named by --pg, dropped and
recreated; reconciler on, `runtime=kubernetes`) creates a group of N
experiments with concurrency N through the HTTP API (ASGI); the fake kubelet moves every pod to
Running, where it stays (its command sleeps). Prints: how long materialisation took, the
experiment pods created per second (first to last POST, the reconciler's throughput: keys,
specs, tokens, statuses and API calls included), and the time until every experiment reads
`running` in the database. Server, kubelet and plx share one process and one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from common import recreate_database
from sqlalchemy import func, select

from app.config import Settings
from app.main import create_app
from app.migrate import upgrade
from app.models import Experiment
from tests.k8s.fake_apiserver import FakeApiServer, FakeKubelet

NAMESPACE = "bench"


async def count(app: Any, status: str | None = None) -> int:
    async with app.state.sessionmaker() as session:
        stmt = select(func.count()).select_from(Experiment)
        if status is not None:
            stmt = stmt.where(Experiment.last_status == status)
        return await session.scalar(stmt) or 0


async def main(n: int, kubelet_on: bool, pg: str | None) -> None:
    api = FakeApiServer(history=200_000)
    host = await api.start()
    kubelet = FakeKubelet(api, step=0.01, run_seconds=3600)
    if kubelet_on:
        kubelet.start()
    pod_times: list[float] = []
    pod_cpu: list[float] = []

    def on_event(kind: str, resource: str, obj: dict[str, Any]) -> None:
        if kind == "ADDED" and resource == "pods" and obj["metadata"]["name"].startswith("plxjob"):
            pod_times.append(time.perf_counter())
            pod_cpu.append(time.process_time())

    api.listeners.append(on_event)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "plx.db"
        if pg:
            await recreate_database(pg)
        settings = Settings(
            data_dir=Path(tmp) / "data", database_url=pg or f"sqlite+aiosqlite:///{db}",
            runtime="kubernetes", api_url="http://testserver", admin_username="root",
            admin_password="password123", reconcile_interval=0.05, k8s_namespace=NAMESPACE,
            k8s_api_host=host, k8s_resync_seconds=60, max_group_experiments=100_000,
        )
        await asyncio.to_thread(upgrade, settings)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                r = await c.post("/api/v1/users/token",
                                 json={"username": "root", "password": "password123"})
                c.headers["Authorization"] = f"token {r.json()['token']}"
                await c.post("/api/v1/projects", json={"name": "p"})
                content = (
                    "version: 1\nkind: group\nbuild: {image: 'python:3.11'}\n"
                    f"hptuning: {{concurrency: {n}, matrix: {{x: {{range: [0, {n}, 1]}}}}}}\n"
                    "run: {cmd: 'sleep 3600'}\n"
                )
                t0 = time.perf_counter()
                r = await c.post("/api/v1/root/p/groups", json={"content": content})
                assert r.status_code == 201, r.text
                while await count(app) < n:
                    await asyncio.sleep(0.05)
                t_materialised = time.perf_counter()
                # The shared build: the fake kubelet would keep its pod running for an hour.
                while not api.list("pods", NAMESPACE, "app=polyaxon-dockerizer"):
                    await asyncio.sleep(0.05)
                for pod in api.list("pods", NAMESPACE, "app=polyaxon-dockerizer"):
                    if kubelet_on:
                        while (api.get("pods", NAMESPACE, pod["metadata"]["name"])["status"]
                               .get("phase") != "Running"):
                            await asyncio.sleep(0.01)
                        kubelet.finish(pod["metadata"]["name"], 0)
                    else:
                        api.set_pod_status(NAMESPACE, pod["metadata"]["name"], phase="Succeeded")
                while len(pod_times) < n:
                    await asyncio.sleep(0.05)
                t_pods = time.perf_counter()
                running = None
                if kubelet_on:
                    while await count(app, "running") < n:
                        await asyncio.sleep(0.1)
                    running = time.perf_counter() - t0
        await kubelet.stop()
        await api.close()
    window = pod_times[-1] - pod_times[0]
    print(json.dumps({
        "database": "postgres" if pg else "sqlite",
        "experiments": n,
        "kubelet": kubelet_on,
        "materialise_s": round(t_materialised - t0, 2),
        "pod_create_window_s": round(window, 2),
        "pods_per_s": round((n - 1) / window, 1) if window else None,
        # CPU of this process (plx, fake API server and kubelet) over the window, in % of a core.
        "process_cpu_pct_in_window": (
            round(100 * (pod_cpu[-1] - pod_cpu[0]) / window) if window else None
        ),
        "group_post_to_last_pod_s": round(t_pods - t0, 2),
        "group_post_to_all_running_s": round(running, 2) if running else None,
        "watch_events": api.rv,
    }, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--no-kubelet", action="store_true")
    parser.add_argument("--pg", default=None, help="a Postgres URL to use instead of SQLite")
    args = parser.parse_args()
    asyncio.run(main(args.experiments, not args.no_kubelet, args.pg))
