"""Crash points (fault injection) and reconcile leases."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.faults import armed_points
from app.services import leases

RECONCILER = Path(__file__).resolve().parents[2] / "app" / "reconciler"
PROGRAM = (
    "from app.faults import crash_point\n"
    "for i in range(5):\n"
    "    crash_point('a')\n"
    "    print(i, flush=True)\n"
)


def _run(env_value: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if env_value is not None:
        env["PLX_CRASH_POINTS"] = env_value
    return subprocess.run(
        [sys.executable, "-c", PROGRAM],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RECONCILER.parents[1],
    )


def test_crash_point_exits_at_the_nth_hit_only_when_armed():
    assert _run(None).returncode == 0 and _run(None).stdout.split() == list("01234")
    first = _run("a")
    assert first.returncode == 137 and first.stdout == ""
    third = _run("b, a:3")
    assert third.returncode == 137 and third.stdout.split() == ["0", "1"]
    assert _run("other").returncode == 0


def test_armed_points_parsing():
    assert armed_points("x, y:2 ,z:0,w:abc,") == {"x": 1, "y": 2, "z": 1, "w": 1}
    assert armed_points("") == {}


def test_at_least_twenty_distinct_points_across_the_reconcile_phases():
    names = []
    for path in RECONCILER.glob("*.py"):
        names += re.findall(r'crash_point\("([^"]+)"\)', path.read_text())
    assert len(names) == len(set(names)) >= 20
    for phase in ("materialise", "start", "observe", "stop"):
        assert any(phase in name for name in names), phase


async def test_leases_claim_renew_expire_and_takeover(app, backend):
    maker = app.state.sessionmaker
    async with maker() as s:
        assert await leases.claim(s, "start:experiment:1", "a", ttl=30)
        await s.commit()
    async with maker() as s:
        assert await leases.claim(s, "start:experiment:1", "a", ttl=30)  # renew
        other = await leases.claim(s, "start:experiment:1", "b", ttl=30)
        await s.commit()
    if backend == "sqlite":
        assert other  # one reconciler per SQLite database: claims always succeed
        return
    assert not other
    # Expiry is judged by the database clock: move the lease into the past.
    async with maker() as s:
        await s.execute(text("UPDATE leases SET expires_at = now() - interval '1 second'"))
        await s.commit()
    async with maker() as s:
        assert await leases.claim(s, "start:experiment:1", "b", ttl=30)
        await s.commit()
        row = (await s.execute(text("SELECT holder, takeovers FROM leases"))).one()
    assert tuple(row) == ("b", 1)
    # The exposition writes numbers as floats (prometheus_client): `..._total 1.0`.
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(await _metrics(app))
        for sample in family.samples
    }
    assert samples["plx_lease_takeovers_total"] == 1


async def test_a_claim_in_flight_is_skipped_not_waited_for(app, backend):
    if backend == "sqlite":
        pytest.skip("SQLite: one reconciler")
    maker = app.state.sessionmaker
    async with maker() as s:
        assert await leases.claim(s, "start:job:7", "a", ttl=0.01)
        await s.commit()
    await asyncio.sleep(0.05)  # expired: free for anyone, but A is re-claiming it right now
    async with maker() as a, maker() as b:
        assert await leases.claim(a, "start:job:7", "a", ttl=30)
        # B sees the row locked (SKIP LOCKED): it skips at once instead of waiting for A.
        assert not await asyncio.wait_for(leases.claim(b, "start:job:7", "b", ttl=30), 5)
        await a.commit()
        await b.commit()
    async with maker() as s:
        assert not await leases.claim(s, "start:job:7", "b", ttl=30)
        await leases.release(s, "start:job:7", "a")
        assert await leases.claim(s, "start:job:7", "b", ttl=30)
        await s.commit()


async def test_claim_many_takes_free_own_and_expired_leases_only(app, backend):
    maker = app.state.sessionmaker
    names = ["start:job:1", "start:job:2", "start:job:3", "start:job:4"]
    if backend == "sqlite":
        async with maker() as s:
            assert await leases.claim_many(s, names, "a") == set(names)
        return
    async with maker() as s:
        assert await leases.claim_many(s, names[:2], "b", ttl=30) == set(names[:2])
        assert await leases.claim_many(s, names[2:3], "b", ttl=0.01) == {names[2]}
        await s.commit()
    await asyncio.sleep(0.05)  # job:3's lease has expired
    async with maker() as other, maker() as s:
        assert await leases.claim(other, names[1], "b", ttl=30)  # B renews job:2 right now
        # job:1 held by B (not expired): left out; job:2 locked by B's claim: skipped, not
        # waited for; job:3 expired: taken over; job:4 absent: inserted.
        held = await asyncio.wait_for(leases.claim_many(s, names, "a", ttl=30), 5)
        assert held == {names[2], names[3]}
        await s.commit()
        await other.commit()
    async with maker() as s:
        rows = dict((await s.execute(text("SELECT name, holder FROM leases"))).all())
        takeovers = await s.scalar(text("SELECT sum(takeovers) FROM leases"))
    assert rows == {names[0]: "b", names[1]: "b", names[2]: "a", names[3]: "a"}
    assert takeovers == 1
    async with maker() as s:  # renewing one's own leases is no takeover
        assert await leases.claim_many(s, names[2:], "a", ttl=30) == set(names[2:])
        await s.commit()
        assert await s.scalar(text("SELECT sum(takeovers) FROM leases")) == 1


async def _metrics(app) -> str:
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return (await c.get("/metrics")).text
