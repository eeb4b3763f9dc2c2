"""Dashboard figures (issue 18) against a real `plx server` on Postgres, run by hand.

    .venv/bin/python bench/bench_dashboard.py [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/plx_bench_dash]
        [--rows 100000] [--group 10000] [--points 1000000] [--compare 20] [--compare-points 100000]

Drops and recreates the database (`--reuse`: measures the one an earlier run seeded), seeds with
INSERT ... SELECT over generate_series: a project of `--rows` experiments with a `loss` metric
and declarations, a group of `--group` experiments, one run with `--points` metric points for
`loss`, and `--compare` runs of `--compare-points` points (their series and tiers filled by
revision 0006's copy, as the API's writes fill them).
Starts `plx server` (the built UI must be in app/ui_dist: `make ui`) and measures:
- the experiments table's first page (100 rows, filtered and sorted by a metric), server time
  (wall time of the request on loopback, p50 of 10);
- the series request of the 1M-point run for 2,000 points, and a zoom into a tenth of it;
- the group points request (10,000 experiments);
- in headless Chromium (Playwright): table rows visible after navigation; the compare page's
  curves all drawn; the group page's parallel coordinates drawn, and a brush's table update;
- the gzip size of the JavaScript the first page loads.
Prints figures, each with the load average (the machine is shared); asserts nothing on time.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib.util
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from bench_runs import ADMIN, PASSWORD, start_server
from common import free_port, recreate_database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


async def seed(url: str, rows: int, group: int, points: int, compare: int, per: int) -> list[int]:
    """Returns the ids of the big run and of the compared runs."""
    engine = create_async_engine(url)
    experiment = (
        "INSERT INTO experiments (user_id, project_id, experiment_group_id, uuid, created_at,"
        " updated_at, last_status, is_managed, stop_requested, last_metric, declarations)"
        " SELECT p.user_id, p.id, {group}, md5(random()::text || g::text),"
        " now() - g * interval '1 second', now() - g * interval '1 second',"
        " (ARRAY['succeeded','failed','running','stopped'])[1 + g % 4], false, false,"
        " json_build_object('loss', random()),"
        " json_build_object('lr', round((random() / 10)::numeric, 4), 'units', 8 * (1 + g % 8),"
        " 'dropout', round(random()::numeric, 2))"
        " FROM projects p, generate_series(1, :n) AS g WHERE p.name = 'dash'"
    )
    async with engine.begin() as conn:
        await conn.execute(text(experiment.format(group="NULL")), {"n": rows})
        gid = await conn.scalar(
            text(
                "INSERT INTO experiment_groups (user_id, project_id, uuid, created_at, updated_at,"
                " last_status, content, hptuning, concurrency, search_algorithm, group_type,"
                " current_iteration, materialized_count, suggestions_done, stop_requested)"
                " SELECT user_id, id, md5(random()::text), now(), now(), 'running', '',"
                " '{\"concurrency\": 8, \"matrix\": {\"lr\": {\"values\": [0.1]}}}', 8,"
                " 'random', 'study', 0, :n, true, false"
                " FROM projects WHERE name = 'dash' RETURNING id"
            ),
            {"n": group},
        )
        await conn.execute(text(experiment.format(group=gid)), {"n": group})
        ids = (
            await conn.scalars(
                text("SELECT id FROM experiments ORDER BY id LIMIT :n"), {"n": compare + 1}
            )
        ).all()
        await conn.execute(
            text(
                "INSERT INTO experiment_metrics (experiment_id, created_at, values)"
                " SELECT :exp, now() - (:n - g) * interval '1 millisecond',"
                " json_build_object('loss', 1.0 / g + random() / 100, 'step', g)"
                " FROM generate_series(1, :n) AS g"
            ),
            {"exp": ids[0], "n": points},
        )
        for exp in ids[1:]:
            await conn.execute(
                text(
                    "INSERT INTO experiment_metrics (experiment_id, created_at, values)"
                    " SELECT :exp, now() - (:n - g) * interval '1 millisecond',"
                    " json_build_object('loss', 1.0 / g + random() / 10, 'step', g)"
                    " FROM generate_series(1, :n) AS g"
                ),
                {"exp": exp, "n": per},
            )
        await conn.execute(
            text("UPDATE experiments SET last_metric = json_build_object('loss', 0.01, 'step', 1)"
                 " WHERE id = ANY(:ids)"),
            {"ids": list(ids)},
        )
        # Each name's series and tiers, as the API's writes (and revision 0006) make them.
        for statement in _migration("0006_metric_series").copy_statements(postgres=True):
            await conn.execute(text(statement))
    await engine.dispose()
    await analyze(url)
    return [gid, *ids]


async def analyze(url: str) -> None:
    """Fresh planner statistics; in autocommit (a rolled-back ANALYZE leaves the old ones)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
    await engine.dispose()


async def seeded(url: str, compare: int) -> list[int]:
    """The group and the runs with metrics of a database seeded by an earlier run (--reuse)."""
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        gid = await conn.scalar(text("SELECT max(id) FROM experiment_groups"))
        ids = (
            await conn.scalars(
                text("SELECT id FROM experiments ORDER BY id LIMIT :n"), {"n": compare + 1}
            )
        ).all()
    await engine.dispose()
    await analyze(url)
    return [gid, *ids]


def _migration(name: str) -> Any:
    path = ROOT / "migrations" / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load() -> str:
    """The machine is shared: every figure is printed with the load average beside it."""
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def timed(client: httpx.Client, path: str, n: int = 10) -> tuple[float, httpx.Response]:
    times, last = [], None
    for _ in range(n):
        start = time.perf_counter()
        last = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        if last.status_code != 200:
            raise SystemExit(f"{path}: {last.status_code} {last.text[:300]}")
    return statistics.median(times), last


def first_page_js_gzip(base: str) -> int:
    index = httpx.get(base + "/").text
    total = 0
    for src in re.findall(r'(?:src|href)="(/assets/[^"]+\.js)"', index):
        total += len(gzip.compress(httpx.get(base + src).content, 9))
    return total


def browser(base: str, token: str, gid: int, compare: list[int]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(base + "/login")
        page.evaluate(
            "([t, u]) => { sessionStorage.setItem('plx.token', t);"
            " sessionStorage.setItem('plx.username', u); }",
            [token, ADMIN],
        )
        url = base + "/projects/admin/dash?query=metric.loss:<0.5&sort=metric.loss"
        for label, target, wait in (
            # The table's rows are virtualised: a screenful of the 100 is in the DOM.
            ("experiments table: first screen of rows visible", url,
             "[data-testid=experiments] tbody tr[data-index='19']"),
            (f"compare {len(compare)} runs: all curves drawn",
             f"{base}/projects/admin/dash/compare?ids={','.join(map(str, compare))}",
             "[data-testid=chart-loss] canvas"),
            ("group page: parallel coordinates drawn", f"{base}/projects/admin/dash/groups/{gid}",
             "[data-testid=parallel] canvas"),
        ):
            start = time.perf_counter()
            page.goto(target)
            page.wait_for_selector(wait, timeout=60_000)
            if "compare" in target:
                page.wait_for_function(
                    "n => document.querySelectorAll('.u-legend .u-series').length >= n",
                    arg=len(compare) + 1,
                    timeout=60_000,
                )
            print(f"  {label}: {(time.perf_counter() - start) * 1000:.0f} ms after navigation"
                  f" ({load()})")
        # Brush the first axis of the parallel coordinates, time until the table follows.
        # ECharts draws 10,000 lines progressively on several stacked canvases: the first one.
        box = page.locator("[data-testid=parallel] canvas").first.bounding_box()
        before = page.get_by_test_id("brushed").inner_text()
        x = box["x"] + 40
        start = time.perf_counter()
        page.mouse.move(x, box["y"] + 60)
        page.mouse.down()
        page.mouse.move(x, box["y"] + 160, steps=2)
        page.mouse.up()
        page.wait_for_function(
            "b => document.querySelector('[data-testid=brushed]').innerText !== b", arg=before,
            timeout=10_000,
        )
        print(f"  brushing an axis: table updated {(time.perf_counter() - start) * 1000:.0f} ms"
              f" after the mouse-up ({page.get_by_test_id('brushed').inner_text()}; {load()})")
        b.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/plx_bench_dash")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--group", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--compare", type=int, default=20)
    parser.add_argument("--compare-points", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true",
                        help="measure the database an earlier run seeded (sizes as it had them)")
    args = parser.parse_args()
    if not (ROOT / "app" / "ui_dist" / "index.html").is_file():
        raise SystemExit("build the UI first: make ui")
    if not args.reuse:
        asyncio.run(recreate_database(args.pg))
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        proc = start_server(args.pg, Path(data), port)
        base = f"http://127.0.0.1:{port}"
        try:
            token = httpx.post(f"{base}/api/v1/users/token",
                               json={"username": ADMIN, "password": PASSWORD}).json()["token"]
            auth = {"Authorization": f"token {token}"}
            c = httpx.Client(base_url=base, headers=auth, timeout=120)
            start = time.perf_counter()
            if args.reuse:
                gid, big, *compared = asyncio.run(seeded(args.pg, args.compare))
            else:
                c.post("/api/v1/projects", json={"name": "dash"}).raise_for_status()
                gid, big, *compared = asyncio.run(seed(
                    args.pg, args.rows, args.group, args.points, args.compare,
                    args.compare_points))
                print(f"seeded in {time.perf_counter() - start:.1f} s ({load()})")
            ms, r = timed(c, "/api/v1/admin/dash/experiments?limit=100"
                             "&query=metric.loss:<0.5&sort=metric.loss")
            print(f"experiments first page (100, filtered + sorted by metric, count"
                  f" {r.json()['count']}): p50 {ms:.1f} ms ({load()})")
            series = f"/api/v1/admin/dash/experiments/{big}/metrics/series?names=loss"
            ms, r = timed(c, series + "&points=2000")
            loss = r.json()["series"][0]
            print(f"series of {loss['count']} points -> {len(loss['x'])}: p50 {ms:.0f} ms"
                  f" ({load()})")
            # A zoom into a tenth of the run at full resolution (base rows over an index).
            zoom = f"&points=2000&x_min={args.points * 0.45:.0f}&x_max={args.points * 0.55:.0f}"
            ms, r = timed(c, series + zoom, n=3)
            loss = r.json()["series"][0]
            print(f"zoomed series, {loss['count']} points in range -> {len(loss['x'])}:"
                  f" p50 {ms:.0f} ms ({load()})")
            ms, r = timed(c, f"/api/v1/admin/dash/groups/{gid}/points?metric=loss", n=3)
            print(f"group points ({r.json()['count']} experiments): p50 {ms:.0f} ms,"
                  f" {len(r.content) / 1e6:.1f} MB ({load()})")
            print(f"first page JavaScript: {first_page_js_gzip(base) / 1024:.0f} KiB gzip")
            if Path(CHROMIUM).is_file():
                browser(base, token, gid, compared)
            else:
                print(f"no browser figures: Chromium is not installed ({CHROMIUM})")
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())
