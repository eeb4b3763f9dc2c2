"""GET .../logs of a large log: peak Python memory and time, whole and `?tail=100`, over ASGI.

    .venv/bin/python bench/bench_logs.py [--mib 200]

Before issue 16 the route read the whole file into one string (peak about 3x the log: bytes,
str, response body); now it streams masked 64 KiB pieces.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx

from app.config import Settings
from app.db import session_scope
from app.main import create_app
from app.migrate import upgrade
from app.services.runs import log_path
from app.services.users import create_user, login


async def main(mib: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="plx-bench-logs-"))
    settings = Settings(
        data_dir=tmp, runtime="fake", reconciler_enabled=False, api_url="http://testserver"
    )
    upgrade(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with session_scope(app.state.sessionmaker) as session:
            await create_user(session, username="alice", password="password123")
        async with session_scope(app.state.sessionmaker) as session:
            token = await login(session, username="alice", password="password123")
        headers = {"Authorization": f"token {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            await c.post("/api/v1/projects", json={"name": "p"}, headers=headers)
            r = await c.post(
                "/api/v1/alice/p/experiments",
                json={"config": {"version": 1, "kind": "experiment"}},
                headers=headers,
            )
            path = log_path(settings, "experiment", r.json()["id"])
            path.parent.mkdir(parents=True, exist_ok=True)
            line = b"epoch 12 step 3456 loss=0.1234 acc=0.9876 " + b"x" * 60 + b"\n"
            with path.open("wb") as f:
                for _ in range(mib * 1024 * 1024 // len(line)):
                    f.write(line)
            size = path.stat().st_size
            url = f"/api/v1/alice/p/experiments/{r.json()['id']}/logs"
            for query in ("", "tail=100"):
                await _measure(app, url, query, token, size)


async def _measure(app, url: str, query: str, token: str, size: int) -> None:
    """Call the app directly, dropping each body piece as it comes: httpx's ASGI transport
    would keep the whole answer, which is not what the server holds."""
    sent, requested, done = 0, False, asyncio.Event()

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays connected until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        nonlocal sent
        sent += len(message.get("body", b""))
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": url, "raw_path": url.encode(), "root_path": "",
        "query_string": query.encode(), "server": ("testserver", 80), "client": ("127.0.0.1", 1),
        "headers": [(b"host", b"testserver"), (b"authorization", f"token {token}".encode())],
    }  # fmt: skip
    tracemalloc.start()
    start = time.perf_counter()
    await app(scope, receive, send)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"GET logs{'?' + query if query else ' (whole)'}: log {size / 2**20:.0f} MiB, sent "
        f"{sent / 2**20:.2f} MiB in {seconds:.2f} s (under tracemalloc), peak Python memory "
        f"{peak / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=200)
    asyncio.run(main(parser.parse_args().mib))
