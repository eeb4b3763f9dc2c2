"""Code upload figures, run by hand: `.venv/bin/python bench/bench_code.py`; no time asserts.

Builds a ~100 MB tarball of 10,000 files, uploads it to a real uvicorn server (SQLite, fake
runtime) over HTTP, then downloads it back; prints the upload+extract time, the download MB/s and
the server's peak RSS growth (the body is streamed to disk, never held whole).
"""

from __future__ import annotations

import asyncio
import os
import resource
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from common import free_port

from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope
from app.main import create_app
from app.migrate import upgrade
from app.services.users import create_user, login

FILES = 10_000
FILE_SIZE = 10_000  # 10,000 x 10 kB = 100 MB


def build_tarball(workdir: Path) -> Path:
    src = workdir / "src"
    for i in range(FILES):
        folder = src / f"d{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        # Half random (incompressible), half text: a realistic mix for gzip.
        data = os.urandom(FILE_SIZE // 2) + (b"x = %d\n" % i) * (FILE_SIZE // 12)
        (folder / f"f{i}.py").write_bytes(data[:FILE_SIZE])
    archive = workdir / "code.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(src, arcname=".")
    return archive




def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def prepare(settings: Settings) -> str:
    engine = make_engine(settings)
    maker = make_sessionmaker(engine)
    async with session_scope(maker) as session:
        await create_user(session, username="bench", password="password123", is_superuser=True)
    async with session_scope(maker) as session:
        token = await login(session, username="bench", password="password123")
    await engine.dispose()
    return token


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        archive = build_tarball(workdir)
        size_mb = archive.stat().st_size / 1e6
        print(
            f"tarball: {FILES} files, {FILES * FILE_SIZE / 1e6:.0f} MB raw, "
            f"{size_mb:.1f} MB gzip (built in {time.perf_counter() - started:.1f} s)"
        )

        settings = Settings(
            data_dir=workdir / "data",
            runtime="fake",
            reconciler_enabled=False,
            max_upload_bytes=500 * 1024 * 1024,
        )
        upgrade(settings)
        token = asyncio.run(prepare(settings))
        app = create_app(settings)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        headers = {"Authorization": f"token {token}"}
        base = f"http://127.0.0.1:{port}/api/v1"
        rss_before = rss_mib()
        with httpx.Client(timeout=120) as client:
            client.post(f"{base}/projects", json={"name": "bench"}, headers=headers)
            started = time.perf_counter()
            cpu_started = time.process_time()
            with open(archive, "rb") as handle:
                r = client.put(
                    f"{base}/bench/bench/repo/upload",
                    headers=headers,
                    files={"repo": ("/tmp/bench.tar.gz", handle, "text/plain")},
                )
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            r.raise_for_status()
            print(
                f"upload + extract: {elapsed:.2f} s ({size_mb / elapsed:.0f} MB/s compressed), "
                f"{r.json()['num_files']} files; CPU {cpu:.2f} s (client + server, all threads); "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
            )
            print(
                f"peak RSS growth during upload: {rss_mib() - rss_before:.0f} MiB "
                "(client + server in one process)"
            )

            for _ in range(3):
                started = time.perf_counter()
                received = 0
                with client.stream(
                    "GET", f"{base}/bench/bench/repo/download", headers=headers
                ) as resp:
                    for chunk in resp.iter_raw(1024 * 1024):
                        received += len(chunk)
                elapsed = time.perf_counter() - started
                print(
                    f"download: {received / 1e6:.1f} MB in {elapsed:.2f} s = "
                    f"{received / 1e6 / elapsed:.0f} MB/s"
                )
        server.should_exit = True
        thread.join()


if __name__ == "__main__":
    main()
