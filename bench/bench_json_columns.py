"""What Postgres `json` (order kept) costs against `jsonb` for the experiment columns, and how
long migration 0005 (jsonb -> json) takes on a large table.

    .venv/bin/python bench/bench_json_columns.py [--pg URL] [--rows N]

It recreates the database of `--pg`, migrates it to 0004, seeds N experiments in 4 projects
(declarations and config JSONB, as before 0005) with one INSERT ... SELECT, then:
1. times `upgrade` to head (0005 rewrites the retyped tables);
2. times, per project (N/4 rows), on the same rows as `json` and as a `jsonb` copy:
   the `declarations.<k>:v` filter (`->>`), a numeric `->>` comparison, and reading every row's
   declarations and config (what a list page decodes).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from common import recreate_database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings
from app.migrate import upgrade

SEED = """
INSERT INTO users (username, password_hash, is_superuser, is_active, created_at)
VALUES ('bench', 'x', false, true, now());
INSERT INTO projects (uuid, created_at, updated_at, user_id, name, is_public)
SELECT 'p' || i, now(), now(), 1, 'p' || i, true FROM generate_series(1, 4) i;
INSERT INTO experiments (uuid, created_at, updated_at, user_id, project_id, name, last_status,
    is_managed, stop_requested, declarations, config)
SELECT md5(i::text), now(), now(), 1, 1 + i % 4, NULL, 'succeeded', false, false,
    jsonb_build_object('zeta', i % 3, 'alpha', 'x' || (i % 7), 'mid', i % 11,
                       'batch_size', 128, 'lr', (i % 100) / 100.0),
    jsonb_build_object('version', 1, 'kind', 'experiment',
                       'declarations', jsonb_build_object('zeta', i % 3, 'alpha', 'x' || (i % 7)),
                       'run', jsonb_build_object('cmd', 'python train.py --lr=' || i))
FROM generate_series(1, :rows) i;
"""

QUERIES = {
    "filter declarations.alpha:x3": (
        "SELECT count(*) FROM {t} WHERE project_id = 2 AND declarations->>'alpha' = 'x3'"
    ),
    "filter declarations.lr:>0.5": (
        "SELECT count(*) FROM {t} WHERE project_id = 2"
        " AND (declarations->>'lr')::float > 0.5"
    ),
    "read declarations+config of the project": (
        "SELECT declarations::text, config::text FROM {t} WHERE project_id = 2"
    ),
}


async def _execute_script(url: str, script: str, **params: int) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        for statement in filter(str.strip, script.split(";")):
            await conn.execute(text(statement), params)
    await engine.dispose()


async def _time_queries(url: str, repeat: int) -> dict[tuple[str, str], float]:
    engine = create_async_engine(url)
    out = {}
    async with engine.connect() as conn:
        await conn.execute(text(
            "CREATE TABLE exp_jsonb AS SELECT id, project_id, declarations::jsonb AS declarations,"
            " config::jsonb AS config FROM experiments"
        ))
        await conn.execute(text("CREATE INDEX ON exp_jsonb (project_id)"))
        await conn.execute(text("ANALYZE experiments"))
        await conn.execute(text("ANALYZE exp_jsonb"))
        for name, sql in QUERIES.items():
            for table, kind in (("experiments", "json"), ("exp_jsonb", "jsonb")):
                times = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    await conn.execute(text(sql.format(t=table)))
                    times.append((time.perf_counter() - start) * 1000)
                out[(name, kind)] = statistics.median(times)
        await conn.commit()
    await engine.dispose()
    return out


async def _column_type(url: str) -> str:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        kind = await conn.scalar(text(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'experiments' AND column_name = 'declarations'"
        ))
    await engine.dispose()
    return str(kind)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/plx_bench")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(recreate_database(args.pg))
    settings = Settings(database_url=args.pg)
    upgrade(settings, "0004_active_run_index")
    start = time.perf_counter()
    asyncio.run(_execute_script(args.pg, SEED, rows=args.rows))
    print(f"seed {args.rows} experiments: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    upgrade(settings)
    print(f"upgrade 0004 -> head (jsonb -> json): {time.perf_counter() - start:.1f} s;"
          f" declarations is now {asyncio.run(_column_type(args.pg))}")
    times = asyncio.run(_time_queries(args.pg, args.repeat))
    print(f"per project ({args.rows // 4} rows), median of {args.repeat}:")
    for name in QUERIES:
        print(f"  {name:42s} json {times[(name, 'json')]:7.1f} ms"
              f"   jsonb {times[(name, 'jsonb')]:7.1f} ms")


if __name__ == "__main__":
    main()
