"""Experiment metrics: object and list bodies, client timestamps, bad values, size limits."""

from __future__ import annotations

import json
import time

TRACKING = {"version": 1, "kind": "experiment"}


async def _experiment(client, owner, project="p") -> str:
    r = await client.post(
        f"/api/v1/alice/{project}/experiments", json={"config": TRACKING}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    return f"/api/v1/alice/{project}/experiments/{r.json()['id']}"


async def _project(client, owner, name="p"):
    r = await client.post("/api/v1/projects", json={"name": name}, headers=owner.headers)
    assert r.status_code == 201


async def test_object_answers_the_row(client, owner):
    await _project(client, owner)
    base = await _experiment(client, owner)
    exp_id = int(base.rsplit("/", 1)[1])
    r = await client.post(
        base + "/metrics", json={"values": {"loss": 0.25, "step": 3}}, headers=owner.headers
    )
    assert r.status_code == 201
    row = r.json()
    assert set(row) == {"id", "uuid", "experiment", "created_at", "values"}
    assert row["experiment"] == exp_id and row["values"] == {"loss": 0.25, "step": 3}
    assert len(row["uuid"]) == 32 and int(row["uuid"], 16) >= 0
    r = await client.get(base + "/metrics", headers=owner.headers)
    assert r.json()["results"] == [row]  # the same uuid on every read


async def test_list_stores_every_point_and_merges_last_metric(client, owner):
    await _project(client, owner)
    base = await _experiment(client, owner)
    points = [
        {"values": {"loss": 1.0 - i / 10, "step": i}, "created_at": f"2026-11-23 12:16:0{i}+00:00"}
        for i in range(5)
    ] + [{"values": {"acc": 0.5}, "created_at": "2026-11-23 12:16:05.779213+00:00"}]
    r = await client.post(base + "/metrics", json=points, headers=owner.headers)
    assert r.status_code == 201 and r.content == b""
    r = await client.get(base + "/metrics", headers=owner.headers)
    rows = r.json()["results"]
    assert r.json()["count"] == 6 and [p["values"] for p in rows] == [p["values"] for p in points]
    assert rows[-1]["created_at"] == "2026-11-23T12:16:05.779213+00:00"
    r = await client.get(base, headers=owner.headers)
    assert r.json()["last_metric"] == {"loss": 0.6, "step": 4, "acc": 0.5}


async def test_bad_values_answer_400_and_write_nothing(client, owner):
    await _project(client, owner)
    base = await _experiment(client, owner)
    good = {"values": {"loss": 0.1}}
    bodies = [
        {"values": {"loss": "0.1"}},
        {"values": {"loss": None}},
        {"values": {"loss": True}},
        {"values": {}},
        {"values": [1, 2]},
        {"loss": 0.1},
        "0.1",
        [],
        [good, {"values": {"loss": "high"}}],  # one bad point: none of the list is stored
        [good, {"values": {"loss": 0.2}, "created_at": "yesterday"}],
    ]
    for body in bodies:
        r = await client.post(base + "/metrics", json=body, headers=owner.headers)
        assert r.status_code == 400, body
        assert r.json()["detail"]
    for raw in ('{"values": {"loss": NaN}}', '{"values": {"loss": Infinity}}',
                '[{"values": {"a": 1}}, {"values": {"a": -Infinity}}]'):  # fmt: skip
        r = await client.post(
            base + "/metrics",
            content=raw.encode(),
            headers={**owner.headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 400, raw
    r = await client.get(base + "/metrics", headers=owner.headers)
    assert r.json()["count"] == 0
    assert (await client.get(base, headers=owner.headers)).json()["last_metric"] is None


async def test_100k_points_refused_fast_with_413(client, owner):
    await _project(client, owner)
    base = await _experiment(client, owner)
    body = json.dumps([{"values": {"loss": 0.5, "step": i}} for i in range(100_000)])
    start = time.perf_counter()
    r = await client.post(
        base + "/metrics",
        content=body.encode(),
        headers={**owner.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and "50000" in r.json()["detail"]
    assert time.perf_counter() - start < 10
    r = await client.get(base + "/metrics", headers=owner.headers)
    assert r.json()["count"] == 0


async def test_ids_of_another_project_are_404(client, owner):
    await _project(client, owner)
    await _project(client, owner, "q")
    base = await _experiment(client, owner)
    elsewhere = base.replace("/alice/p/", "/alice/q/")
    r = await client.post(elsewhere + "/metrics", json={"values": {"a": 1}}, headers=owner.headers)
    assert r.status_code == 404
    assert (await client.get(elsewhere + "/metrics", headers=owner.headers)).status_code == 404
    r = await client.post(
        "/api/v1/alice/p/experiments/999999/metrics",
        json={"values": {"a": 1}},
        headers=owner.headers,
    )
    assert r.status_code == 404
    assert (await client.get(base + "/metrics", headers=owner.headers)).json()["count"] == 0
