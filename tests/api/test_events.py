"""The change feed: what writes events, cursors, long-poll, bad input, and no skipped event
under concurrent writers (two app instances on one database)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import func, select, text

from app.main import create_app
from app.models import Event

CONFIG = "version: 1\nkind: experiment\nrun:\n  cmd: echo hi\n"
FEED = "/api/v1/alice/p/events"


async def _setup(client, owner, public=False):
    r = await client.post(
        "/api/v1/projects", json={"name": "p", "is_public": public}, headers=owner.headers
    )
    assert r.status_code == 201, r.text


async def _experiment(client, owner) -> int:
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": CONFIG}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _follow(client, headers, after=None, **params):
    params = {k: v for k, v in params.items() if v is not None}
    if after is not None:
        params["after"] = after
    r = await client.get(FEED, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _collect(client, headers, expected, after=None, limit=None):
    """Follow the feed until `expected` events arrived. On Postgres an event shows once every
    older transaction of the cluster has ended, so a write may take a moment to appear."""
    results, cursor = [], after
    deadline = time.monotonic() + 20
    while len(results) < expected and time.monotonic() < deadline:
        page = await _follow(client, headers, after=cursor, limit=limit, wait=1)
        results += page["results"]
        cursor = page["next"]
    assert len(results) == expected, results
    return {"count": len(results), "next": cursor, "results": results}


async def _stored(app) -> int:
    async with app.state.sessionmaker() as s:
        return await s.scalar(select(func.count()).select_from(Event))


async def test_writes_produce_events_in_order(client, owner, app):
    await _setup(client, owner)
    exp = await _experiment(client, owner)
    base = f"/api/v1/alice/p/experiments/{exp}"
    r = await client.post(base + "/statuses", json={"status": "running"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    r = await client.post(base + "/metrics", json={"values": {"loss": 0.5}}, headers=owner.headers)
    assert r.status_code == 201, r.text
    page = await _collect(client, owner.headers, await _stored(app))
    seen = [(e["kind"], e["object_type"], e["status"]) for e in page["results"]]
    assert seen[0] == ("created", "project", None)
    assert ("created", "experiment", None) in seen
    assert ("status", "experiment", "created") in seen
    assert seen[-2:] == [("status", "experiment", "running"), ("metric", "experiment", None)]
    assert page["results"][-1]["data"] == {"values": {"loss": 0.5}}
    assert page["results"][-1]["object_id"] == exp
    assert page["next"] == page["results"][-1]["cursor"]
    # Following from `next` gives nothing until the next write, then exactly that write.
    empty = await _follow(client, owner.headers, after=page["next"])
    assert empty == {"count": 0, "next": page["next"], "results": []}
    r = await client.delete(base, headers=owner.headers)
    assert r.status_code == 204
    tail = await _collect(client, owner.headers, 1, after=page["next"])
    assert [(e["kind"], e["object_type"], e["object_id"]) for e in tail["results"]] == [
        ("deleted", "experiment", exp)
    ]
    # Paging with a small limit walks the same sequence.
    paged = await _collect(client, owner.headers, await _stored(app), limit=2)
    walked = [e["id"] for e in paged["results"]]
    assert walked == [e["id"] for e in page["results"] + tail["results"]]


async def test_project_delete_cascades_into_events(client, owner, app):
    await _setup(client, owner)
    exp = await _experiment(client, owner)
    r = await client.delete("/api/v1/alice/p", headers=owner.headers)
    assert r.status_code == 204, r.text
    async with app.state.sessionmaker() as s:
        rows = (await s.execute(select(Event.kind, Event.object_type, Event.object_id))).all()
    assert ("deleted", "experiment", exp) in rows
    assert ("deleted", "project") in [(k, t) for k, t, _ in rows]


async def test_long_poll_wakes_on_a_write_and_clamps_wait(client, owner, app):
    await _setup(client, owner)
    head = (await _collect(client, owner.headers, 1))["next"]

    async def write_later() -> None:
        await asyncio.sleep(0.4)
        await _experiment(client, owner)

    start = time.monotonic()
    writer = asyncio.create_task(write_later())
    page = await _follow(client, owner.headers, after=head, wait=10)
    await writer
    assert 0.3 < time.monotonic() - start < 5
    assert page["results"][0]["kind"] == "created"
    # A huge wait is clamped, not refused; with events pending it answers at once.
    start = time.monotonic()
    page = await _follow(client, owner.headers, after=head, wait=10**9)
    assert page["count"] >= 1 and time.monotonic() - start < 2
    # No event: waits about `wait`, then answers empty with the same cursor.
    start = time.monotonic()
    page = await _follow(client, owner.headers, after=page["next"], wait=0.5)
    assert page["results"] == [] and 0.4 < time.monotonic() - start < 3


BAD = [
    {"after": "abc"},
    {"after": "1"},
    {"after": "-1-2"},
    {"after": "1-2-3"},
    {"after": "99999999999999999999-1"},
    {"wait": "-1"},
    {"wait": "x"},
    {"limit": "0"},
    {"limit": "100000"},
]


async def test_bad_input_is_400(client, owner):
    await _setup(client, owner)
    for params in BAD:
        r = await client.get(FEED, params=params, headers=owner.headers)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["detail"]


async def test_permissions(client, owner, other):
    await _setup(client, owner, public=False)
    assert (await client.get(FEED)).status_code == 401
    assert (await client.get(FEED, headers=other.headers)).status_code == 404
    r = await client.patch("/api/v1/alice/p", json={"is_public": True}, headers=owner.headers)
    assert r.status_code == 200, r.text
    assert (await client.get(FEED, headers=other.headers)).status_code == 200


async def test_out_of_order_commit_is_not_skipped(client, owner, app, backend):
    """Txn A writes first (lower txid) but commits last; the feed must hold B back until A ends."""
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: commits are in id order")
    await _setup(client, owner)
    exp = await _experiment(client, owner)
    head = (await _collect(client, owner.headers, await _stored(app)))["next"]
    engine = app.state.engine
    async with engine.connect() as a:
        await a.begin()
        await a.execute(
            text(
                'INSERT INTO experiment_metrics (experiment_id, created_at, "values") '
                "VALUES (:e, now(), '{\"a\": 1}')"
            ),
            {"e": exp},
        )
        async with engine.begin() as b:
            await b.execute(
                text(
                    'INSERT INTO experiment_metrics (experiment_id, created_at, "values") '
                    "VALUES (:e, now(), '{\"b\": 1}')"
                ),
                {"e": exp},
            )
        page = await _follow(client, owner.headers, after=head)
        assert page["results"] == [] and page["next"] == head
        await a.commit()
    page = await _collect(client, owner.headers, 2, after=head)
    assert [e["data"]["values"] for e in page["results"]] == [{"a": 1}, {"b": 1}]


async def test_concurrent_writers_on_two_instances_never_skip(
    client, owner, app, settings, backend
):
    """Two app instances write metrics concurrently while a reader follows the feed with
    cursors; the reader sees every event exactly once, in the stored order."""
    await _setup(client, owner)
    exps = [await _experiment(client, owner) for _ in range(4)]
    second = create_app(settings.model_copy())
    writes = 15 if backend == "sqlite" else 25
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c2:

            async def writer(c, exp_id: int) -> None:
                for i in range(writes):
                    r = await c.post(
                        f"/api/v1/alice/p/experiments/{exp_id}/metrics",
                        json={"values": {"i": i}},
                        headers=owner.headers,
                    )
                    assert r.status_code == 201, r.text

            seen: list[int] = []
            total = await _stored(app) + 4 * writes

            async def reader() -> None:
                cursor = None
                deadline = time.monotonic() + 60
                while len(seen) < total and time.monotonic() < deadline:
                    page = await _follow(client, owner.headers, after=cursor, limit=7)
                    seen.extend(e["id"] for e in page["results"])
                    cursor = page["next"]
                    await asyncio.sleep(0 if page["results"] else 0.05)

            read = asyncio.create_task(reader())
            await asyncio.gather(
                writer(client, exps[0]),
                writer(c2, exps[1]),
                writer(client, exps[2]),
                writer(c2, exps[3]),
            )
            await read
    async with app.state.sessionmaker() as s:
        stored = list((await s.scalars(select(Event.id).order_by(Event.txid, Event.id))).all())
        metrics = await s.scalar(select(func.count()).where(Event.kind == "metric"))
    assert metrics == 4 * writes
    assert len(stored) == total
    assert len(seen) == len(set(seen)) and seen == stored
