"""The stale-heartbeat sweep and the heartbeat routes that feed it."""

from __future__ import annotations

from datetime import timedelta

from app.db import session_scope
from app.models import Experiment
from app.models.base import utcnow
from app.reconciler.loop import Reconciler
from app.reconciler.runs import ZOMBIE, sweep_stale_heartbeats
from app.runtimes.fake import FakeRuntime

TRACKING = {"version": 1, "kind": "experiment"}


async def _running(client, owner) -> str:
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": TRACKING}, headers=owner.headers
    )
    base = f"/api/v1/alice/p/experiments/{r.json()['id']}"
    r = await client.post(base + "/statuses", json={"status": "running"}, headers=owner.headers)
    assert r.status_code == 201
    return base


async def _age(app, base: str, *, heartbeat: bool, started: bool) -> None:
    old = utcnow() - timedelta(seconds=600)
    async with session_scope(app.state.sessionmaker) as session:
        exp = await session.get(Experiment, int(base.rsplit("/", 1)[1]))
        if heartbeat:
            exp.heartbeat_at = old
        if started:
            exp.started_at = old


async def _status(client, owner, base: str) -> str:
    return (await client.get(base, headers=owner.headers)).json()["last_status"]


async def test_sweep_fails_only_stale_running_experiments(client, owner, app):
    await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    alive, silent, never, finished = [await _running(client, owner) for _ in range(4)]
    await _age(app, alive, heartbeat=True, started=True)
    assert (await client.post(alive + "/_heartbeat", headers=owner.headers)).status_code == 200
    await _age(app, silent, heartbeat=True, started=True)
    await _age(app, never, heartbeat=False, started=True)
    await _age(app, finished, heartbeat=True, started=True)
    await client.post(finished + "/statuses", json={"status": "succeeded"}, headers=owner.headers)
    rec = Reconciler(
        app.state.settings, app.state.sessionmaker, FakeRuntime(), steps=[sweep_stale_heartbeats]
    )
    app.state.settings.heartbeat_timeout = 0  # off: nothing is judged
    await rec.reconcile_once()
    assert [await _status(client, owner, b) for b in (silent, never)] == ["running", "running"]
    app.state.settings.heartbeat_timeout = 60
    await rec.reconcile_once()
    assert await _status(client, owner, alive) == "running"
    assert await _status(client, owner, silent) == "failed"
    assert await _status(client, owner, never) == "failed"
    assert await _status(client, owner, finished) == "succeeded"
    r = await client.get(silent + "/statuses", headers=owner.headers)
    assert r.json()["results"][-1]["message"] == ZOMBIE
    await rec.reconcile_once()  # idempotent: one failed row
    r = await client.get(never + "/statuses", headers=owner.headers)
    assert [s["status"] for s in r.json()["results"]].count("failed") == 1


async def test_replica_heartbeat_counts_for_its_experiment(client, owner, app):
    await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    config = {"version": 1, "kind": "experiment", "run": {"cmd": "true"}}
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": config}, headers=owner.headers
    )
    base = f"/api/v1/alice/p/experiments/{r.json()['id']}"
    job_id = (await client.get(base + "/jobs", headers=owner.headers)).json()["results"][0]["id"]
    r = await client.post(f"{base}/jobs/{job_id}/_heartbeat", headers=owner.headers)
    assert r.status_code == 200
    async with session_scope(app.state.sessionmaker) as session:
        exp = await session.get(Experiment, int(base.rsplit("/", 1)[1]))
        assert exp.heartbeat_at is not None
    r = await client.post(f"{base}/jobs/{job_id + 1000}/_heartbeat", headers=owner.headers)
    assert r.status_code == 404
