"""The dashboard's reads: downsampled series of an experiment, a group's points."""

from __future__ import annotations

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
        app.state.settings, app.state.sessionmaker, FakeRuntime(),
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
    r = await client.get(
        f"/api/v1/alice/p/groups/{gid}/points?metric=loss", headers=owner.headers
    )
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
        app.state.settings, app.state.sessionmaker, FakeRuntime(),
        steps=list(app.state.reconciler_steps),
    )
    await rec.reconcile_once()
    body = (await client.get(f"/api/v1/alice/p/groups/{gid}/points", headers=owner.headers)).json()
    rungs = body["rungs"]
    assert [(r["bracket"], r["rung"]) for r in rungs][:3] == [(2, 0), (2, 1), (2, 2)]
    assert rungs[0]["n_configs"] == 9 and rungs[0]["iteration"] == 0
    assert body["count"] == 9 and all(p["iteration"] == 0 for p in body["results"])
