"""/metrics: gauges cached (one query per period, even under a burst), a bearer token when
PLX_METRICS_TOKEN is set; /readyz never echoes the database's error."""

from __future__ import annotations

import asyncio
import logging

from pydantic import SecretStr
from sqlalchemy import event

EXPERIMENT = "version: 1\nkind: experiment\nrun:\n  cmd: echo hi\n"


def _created(text: str) -> float:
    for line in text.splitlines():
        if line.startswith('plx_runs{kind="experiment",status="created"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class _Statements:
    def __init__(self, engine) -> None:
        self.count = 0
        self.engine = engine.sync_engine
        event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, *args) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


async def test_metrics_gauges_are_cached_between_scrapes(client, app, owner):
    app.state.settings.metrics_cache_seconds = 60.0
    assert (
        await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    ).status_code == 201
    first = await client.get("/metrics")
    assert first.status_code == 200 and _created(first.text) == 0
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": EXPERIMENT}, headers=owner.headers
    )
    assert r.status_code == 201
    assert _created((await client.get("/metrics")).text) == 0  # within the period: cached
    app.state.metrics_gauges.read_at -= 61  # the period is over
    assert _created((await client.get("/metrics")).text) == 1


async def test_a_burst_of_scrapes_costs_one_database_read(client, app):
    seen = _Statements(app.state.engine)
    try:
        answers = await asyncio.gather(*(client.get("/metrics") for _ in range(20)))
    finally:
        seen.close()
    assert all(r.status_code == 200 for r in answers)
    # One read of the gauges: 4 run kinds + leases (+ a BEGIN/COMMIT on some drivers).
    assert 0 < seen.count <= 7, seen.count


async def test_metrics_token_required_when_set(client, app):
    app.state.settings.metrics_token = SecretStr("s3cret-scrape")
    r = await client.get("/metrics")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "plx_runs" not in r.text
    for bad in ("Bearer wrong", "token s3cret-scrape", "Bearer", "s3cret-scrape"):
        assert (await client.get("/metrics", headers={"Authorization": bad})).status_code == 401
    r = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
    assert r.status_code == 200 and "plx_runs" in r.text


async def test_metrics_open_without_a_token_setting(client):
    assert (await client.get("/metrics")).status_code == 200


class _BrokenEngine:
    """An engine whose connection fails with an error naming secrets, as drivers' errors do."""

    def connect(self):
        raise OSError("could not connect to db.internal.corp:5432 as user plx password=hunter2")


async def test_readyz_does_not_echo_database_errors(client, app, caplog):
    app.state.engine, real = _BrokenEngine(), app.state.engine
    try:
        with caplog.at_level(logging.ERROR, logger="plx.health"):
            r = await client.get("/readyz")
    finally:
        app.state.engine = real
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "detail": "The database is unavailable."}
    assert "hunter2" not in r.text and "db.internal" not in r.text
    assert "hunter2" in caplog.text  # the operator still learns why


async def test_readyz_ok(client):
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
