"""The dashboard's reads: downsampled series of an experiment, a group's points."""

from __future__ import annotations

from sqlalchemy import select

from app.db import session_scope
from app.models import MetricSeries
from app.reconciler.loop import Reconciler
from app.runtimes.fake import FakeRuntime

TRACKING = {"version": 1, "kind": "experiment"}


async def _setup(client, owner) -> str:
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    assert r.status_code == 201
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": TRACKING}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    return f"/api/v1/alice/p/experiments/{r.json()['id']}"


async def test_series_are_downsampled_keeping_extremes(client, owner):
    base = await _setup(client, owner)
    points = [{"values": {"loss": 1.0 / (i + 1), "acc": i / 1000, "step": i}} for i in range(1000)]
    points[500]["values"]["loss"] = 50.0  # a spike
    r = await client.post(base + "/metrics", json=points, headers=owner.headers)
    assert r.status_code == 201, r.text
    r = await client.get(base + "/metrics/series?names=loss&points=100", headers=owner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 1000 and body["axis"] == "step"
    (loss,) = body["series"]
    assert loss["name"] == "loss" and loss["count"] == 1000
    assert len(loss["x"]) <= 101 and len(loss["x"]) == len(loss["y"])
    assert 50.0 in loss["y"] and loss["x"][loss["y"].index(50.0)] == 500
    assert loss["x"][0] == 0 and loss["x"][-1] == 999
    # Without names: every metric the run reported but `step`.
    r = await client.get(base + "/metrics/series?points=10", headers=owner.headers)
    assert [s["name"] for s in r.json()["series"]] == ["acc", "loss"]


async def test_series_zoom_into_a_range_at_full_resolution(client, owner):
    base = await _setup(client, owner)
    points = [{"values": {"loss": float(i), "step": i}} for i in range(1000)]
    await client.post(base + "/metrics", json=points, headers=owner.headers)
    r = await client.get(
        base + "/metrics/series?names=loss&points=1000&x_min=100&x_max=149", headers=owner.headers
    )
    (loss,) = r.json()["series"]
    assert loss["x"] == [float(x) for x in range(100, 150)]


async def test_series_time_axis_and_bad_input(client, owner):
    base = await _setup(client, owner)
    await client.post(base + "/metrics", json={"values": {"loss": 1.0}}, headers=owner.headers)
    r = await client.get(base + "/metrics/series?axis=time", headers=owner.headers)
    (loss,) = r.json()["series"]
    assert loss["x"][0] > 1.7e9  # seconds since the epoch
    too_many = ",".join(f"m{i}" for i in range(11))
    r = await client.get(base + f"/metrics/series?names={too_many}", headers=owner.headers)
    assert r.status_code == 400 and "at most 10" in r.json()["detail"]
    r = await client.get(base + "/metrics/series?points=1", headers=owner.headers)
    assert r.status_code == 400
    r = await client.get(base + "/metrics/series?axis=epoch", headers=owner.headers)
    assert r.status_code == 400


async def test_series_of_a_private_project_is_hidden(client, owner, other):
    r = await client.post(
        "/api/v1/projects", json={"name": "p", "is_public": False}, headers=owner.headers
    )
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": TRACKING}, headers=owner.headers
    )
    base = f"/api/v1/alice/p/experiments/{r.json()['id']}"
    assert (await client.get(base + "/metrics/series", headers=other.headers)).status_code == 404
    r = await client.get("/api/v1/alice/p/groups/1/points", headers=other.headers)
    assert r.status_code == 404


async def test_group_points(app, client, owner):
    await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    content = """
version: 1
kind: group
hptuning:
  concurrency: 1
  matrix: {lr: {values: [0.1, 0.2, 0.3]}, units: {values: [8]}}
run: {cmd: "true"}
"""
    r = await client.post(
        "/api/v1/alice/p/groups", json={"content": content}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    rec = Reconciler(
        app.state.settings,
        app.state.sessionmaker,
        FakeRuntime(),
        steps=list(app.state.reconciler_steps),
    )
    await rec.reconcile_once()  # the group's experiments are created by the reconciler
    r = await client.get(f"/api/v1/alice/p/groups/{gid}/points", headers=owner.headers)
    first = r.json()["results"][0]["id"]
    await client.post(
        f"/api/v1/alice/p/experiments/{first}/metrics",
        json={"values": {"loss": 0.5}},
        headers=owner.headers,
    )
    r = await client.get(f"/api/v1/alice/p/groups/{gid}/points?metric=loss", headers=owner.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 3 and body["metric"] == "loss"
    rows = body["results"]
    assert [p["declarations"]["lr"] for p in rows] == [0.1, 0.2, 0.3]
    assert rows[0]["metric"] == 0.5 and rows[1]["metric"] is None
    assert all(p["status"] for p in rows)
    r = await client.get(
        f"/api/v1/alice/p/groups/{gid}/points?limit=1&offset=2", headers=owner.headers
    )
    assert [p["declarations"]["lr"] for p in r.json()["results"]] == [0.3]


async def test_group_points_carry_the_hyperband_schedule(app, client, owner):
    await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    content = """
version: 1
kind: group
hptuning:
  concurrency: 2
  hyperband:
    max_iter: 9
    eta: 3
    resource: {name: epochs, type: int}
    metric: {name: loss, optimization: minimize}
  matrix: {lr: {uniform: 0:1}}
run: {cmd: "true"}
"""
    r = await client.post(
        "/api/v1/alice/p/groups", json={"content": content}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    rec = Reconciler(
        app.state.settings,
        app.state.sessionmaker,
        FakeRuntime(),
        steps=list(app.state.reconciler_steps),
    )
    await rec.reconcile_once()
    body = (await client.get(f"/api/v1/alice/p/groups/{gid}/points", headers=owner.headers)).json()
    rungs = body["rungs"]
    assert [(r["bracket"], r["rung"]) for r in rungs][:3] == [(2, 0), (2, 1), (2, 2)]
    assert rungs[0]["n_configs"] == 9 and rungs[0]["iteration"] == 0
    assert body["count"] == 9 and all(p["iteration"] == 0 for p in body["results"])


async def _stored_series(app, exp_id: int) -> list[tuple]:
    async with session_scope(app.state.sessionmaker) as session:
        rows = await session.execute(
            select(
                MetricSeries.name,
                MetricSeries.level,
                MetricSeries.bucket,
                MetricSeries.points,
                MetricSeries.step,
                MetricSeries.value,
                MetricSeries.high_step,
                MetricSeries.high_value,
            )
            .where(MetricSeries.experiment_id == exp_id)
            .order_by(MetricSeries.name, MetricSeries.level, MetricSeries.bucket)
        )
        return [tuple(row) for row in rows]


async def test_series_written_point_by_point_equal_those_written_in_batches(app, client, owner):
    """One point per request (Postgres: one statement) or batches of any size, with and
    without `step`, a name missing from some points: the same series and tiers."""
    points = []
    for i in range(300):
        values = {"loss": float((i * 37) % 101), "step": 5 * i}
        if i % 4 == 0:
            values["acc"] = i / 300
        if i >= 250:
            del values["step"]  # its x is then its position in the run
        points.append(
            {"values": values, "created_at": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z"}
        )
    one_by_one = await _setup(client, owner)
    for point in points:
        r = await client.post(one_by_one + "/metrics", json=point, headers=owner.headers)
        assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": TRACKING}, headers=owner.headers
    )
    batched = f"/api/v1/alice/p/experiments/{r.json()['id']}"
    for start, end in ((0, 7), (7, 200), (200, 201), (201, 300)):
        r = await client.post(batched + "/metrics", json=points[start:end], headers=owner.headers)
        assert r.status_code == 201, r.text
    a, b = int(one_by_one.rsplit("/", 1)[1]), int(batched.rsplit("/", 1)[1])
    stored = await _stored_series(app, a)
    assert stored == await _stored_series(app, b)
    assert ("loss", 0, 299, 1, 299.0, float((299 * 37) % 101), None, None) in stored
    for query in (
        "names=loss,acc&points=20",
        "names=loss&points=20&axis=time",
        "x_min=100&x_max=400",
    ):
        answers = [
            (await client.get(f"{base}/metrics/series?{query}", headers=owner.headers)).json()
            for base in (one_by_one, batched)
        ]
        assert answers[0]["series"] == answers[1]["series"], query
        assert answers[0]["total"] == 300
    whole = answers[0]["series"]
    # x in [100, 400]: steps 100..400 (points 20..80) and positions 250..299.
    assert [s["count"] for s in whole] == [16 + 12, 61 + 50]  # acc (every 4th point), loss


async def test_series_of_a_deleted_experiment_are_deleted(app, client, owner):
    base = await _setup(client, owner)
    await client.post(base + "/metrics", json={"values": {"loss": 1.0}}, headers=owner.headers)
    exp_id = int(base.rsplit("/", 1)[1])
    assert await _stored_series(app, exp_id)
    assert (await client.delete(base, headers=owner.headers)).status_code == 204
    assert await _stored_series(app, exp_id) == []
