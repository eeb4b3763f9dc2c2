"""Helpers shared by the benchmarks (run by hand as `python bench/<name>.py`)."""

from __future__ import annotations

import socket

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def recreate_database(url: str) -> None:
    """Drop and create the Postgres database named in `url` (connections to it are ended)."""
    base = make_url(url)
    admin = create_async_engine(
        base.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{base.database}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{base.database}"'))
    await admin.dispose()
