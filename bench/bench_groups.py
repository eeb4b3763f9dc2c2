"""Group figures, run by hand; no time asserts.

    PLX_BENCH_DATABASE_URL=postgresql+asyncpg://postgres@localhost/plx_bench_groups \
        .venv/bin/python bench/bench_groups.py [N]

Creates a random group of N experiments (default 10,000) through the API over ASGI, materialises
it with the group step (the run step is left out: nothing starts), then prints the
materialisation time, group detail p50/p95 and the group's experiment list p50 (on Postgres
after a VACUUM ANALYZE, as autovacuum would run after such a bulk insert). Without
PLX_BENCH_DATABASE_URL it uses a temporary SQLite file.

Figures (2026-11-23, local Postgres 15, a machine shared with other test suites):
- 10,000 experiments, unloaded (load ~1): materialised in 3.1 s; detail p50 9 / p95 12 ms;
  group experiment list p50 22 ms.
- 10,000 under load ~9: materialised in 6.6-8.5 s; detail p95 39-53 ms.
- 100,000 under load ~15: materialised in 127-153 s (rendering each experiment's file costs
  ~0.25 ms of CPU, the rest is the insert); detail p50 40-120 ms; list p50 105-220 ms (its
  count(*) reads every row of the group).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import recreate_database
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings
from app.db import session_scope
from app.main import create_app
from app.migrate import upgrade
from app.reconciler.groups import reconcile_groups
from app.reconciler.loop import Reconciler
from app.runtimes.fake import FakeRuntime
from app.services.users import create_user, login


def content(n: int) -> str:
    return f"""
version: 1
kind: group
hptuning:
  concurrency: 10
  random_search: {{n_experiments: {n}}}
  matrix:
    lr: {{uniform: '0:1'}}
    units: {{values: [8, 16, 32, 64]}}
declarations: {{batch_size: 128}}
run: {{cmd: "python train.py --lr={{{{ lr }}}} --units={{{{ units }}}}"}}
"""




def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(client: httpx.AsyncClient, path: str, headers: dict[str, str], n: int) -> list:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.get(path, headers=headers)
        samples.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
    return samples


async def main(n: int) -> None:
    url = os.environ.get("PLX_BENCH_DATABASE_URL")
    tmp = Path(tempfile.mkdtemp(prefix="plx-bench-groups-"))
    if url:
        await recreate_database(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'plx.db'}"
    settings = Settings(
        data_dir=tmp,
        database_url=url,
        runtime="fake",
        reconciler_enabled=False,
        max_group_experiments=max(n, 100_000),
    )
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        maker = app.state.sessionmaker
        async with session_scope(maker) as session:
            await create_user(session, username="bench", password="password123")
        async with session_scope(maker) as session:
            token = await login(session, username="bench", password="password123")
        headers = {"Authorization": f"token {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.post("/api/v1/projects", json={"name": "p"}, headers=headers)
            r = await client.post(
                "/api/v1/bench/p/groups", json={"content": content(n)}, headers=headers
            )
            assert r.status_code == 201, r.text
            gid = r.json()["id"]
            rec = Reconciler(settings, maker, FakeRuntime(), steps=[reconcile_groups])
            t0 = time.perf_counter()
            passes = 0
            while True:
                await rec.reconcile_once()
                passes += 1
                detail = (await client.get(f"/api/v1/bench/p/groups/{gid}", headers=headers)).json()
                if detail["num_experiments"] >= n or passes > 1000:
                    break
            elapsed = time.perf_counter() - t0
            print(f"backend: {make_url(url).get_backend_name()}")
            print(
                f"materialised {detail['num_experiments']} experiments in {elapsed:.2f} s "
                f"({passes} passes, {detail['num_experiments'] / elapsed:.0f}/s)"
            )
            if make_url(url).get_backend_name() == "postgresql":
                # What autovacuum does soon after a bulk insert: fresh statistics and a visibility
                # map, so the counters are an index-only scan of (group, last_status).
                engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
                async with engine.connect() as conn:
                    await conn.execute(text("VACUUM ANALYZE experiments"))
                await engine.dispose()
            detail_ms = await timed(client, f"/api/v1/bench/p/groups/{gid}", headers, 200)
            print(
                f"group detail: p50 {statistics.median(detail_ms):.1f} ms, "
                f"p95 {percentile(detail_ms, 0.95):.1f} ms"
            )
            list_ms = await timed(
                client, f"/api/v1/bench/p/groups/{gid}/experiments?limit=20", headers, 100
            )
            print(
                f"group experiments list: p50 {statistics.median(list_ms):.1f} ms, "
                f"p95 {percentile(list_ms, 0.95):.1f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
