"""POST metrics with `?dedupe=true`: a retried batch (same created_at and values) is stored once."""

from __future__ import annotations

import asyncio

from tests.api.test_metrics import _experiment, _project


def _batch(start: int, n: int) -> list[dict]:
    return [
        {"values": {"loss": 1 / (i + 1), "step": i}, "created_at": f"2026-11-23T12:00:00.{i:06d}Z"}
        for i in range(start, start + n)
    ]


async def test_retried_batch_is_stored_once(client, owner):
    await _project(client, owner)
    base = await _experiment(client, owner)
    url = base + "/metrics?dedupe=true"
    for batch in (_batch(0, 50), _batch(0, 50), _batch(25, 50), _batch(50, 25)):
        r = await client.post(url, json=batch, headers=owner.headers)
        assert r.status_code == 201, r.text
    r = await client.get(base + "/metrics?limit=1000", headers=owner.headers)
    steps = [p["values"]["step"] for p in r.json()["results"]]
    assert steps == list(range(75))
    r = await client.get(base, headers=owner.headers)
    assert r.json()["last_metric"]["step"] == 74


async def test_same_stamp_other_values_is_a_new_point(client, owner):
    await _project(client, owner)
    base = await _experiment(client, owner)
    stamp = "2026-11-23T12:00:00.5+00:00"
    for value in (1, 2, 1):
        point = {"values": {"x": value}, "created_at": stamp}
        r = await client.post(base + "/metrics?dedupe=true", json=point, headers=owner.headers)
        assert r.status_code == 201
    r = await client.get(base + "/metrics", headers=owner.headers)
    assert [p["values"]["x"] for p in r.json()["results"]] == [1, 2]


async def test_without_dedupe_a_repeat_is_stored_again(client, owner):
    await _project(client, owner)
    base = await _experiment(client, owner)
    for _ in range(2):
        r = await client.post(base + "/metrics", json=_batch(0, 3), headers=owner.headers)
        assert r.status_code == 201
    r = await client.get(base + "/metrics", headers=owner.headers)
    assert r.json()["count"] == 6


async def test_concurrent_retries_store_once(client, owner):
    await _project(client, owner)
    base = await _experiment(client, owner)
    batch = _batch(0, 200)
    results = await asyncio.gather(
        *[
            client.post(base + "/metrics?dedupe=true", json=batch, headers=owner.headers)
            for _ in range(4)
        ]
    )
    assert all(r.status_code == 201 for r in results)
    r = await client.get(base + "/metrics?limit=1000", headers=owner.headers)
    assert r.json()["count"] == 200
