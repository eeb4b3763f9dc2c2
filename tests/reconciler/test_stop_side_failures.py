"""Every stop route stops, whatever fails beside it (issue 15 item 3): with every workload's
clean-up broken, a stop of an experiment, job, build, group, tensorboard or notebook answers 200
and its row ends `stopped`. On the fake runtime, SQLite and Postgres."""

from __future__ import annotations

from typing import Any

import pytest

from app.reconciler.groups import reconcile_groups
from app.reconciler.loop import Reconciler
from app.reconciler.plugins import reconcile_plugins
from app.reconciler.runs import reconcile_runs
from app.runtimes.fake import FakeRuntime

P = "/api/v1/alice/p"
CONFIGS = {
    "experiments": "version: 1\nkind: experiment\nrun:\n  cmd: sleep 100\n",
    "jobs": "version: 1\nkind: job\nbuild:\n  image: busybox\nrun:\n  cmd: sleep 100\n",
    "builds": "version: 1\nkind: build\nbuild:\n  image: busybox\n",
}
GROUP = (
    "version: 1\nkind: group\nhptuning:\n  concurrency: 2\n"
    "  matrix: {x: {values: [1, 2]}}\nrun: {cmd: sleep 100}\n"
)


async def _create(client: Any, owner: Any, kind: str) -> tuple[str, str]:
    """(stop route, where to read its status) of a new run of `kind`."""
    if kind in CONFIGS:
        r = await client.post(f"{P}/{kind}", json={"config": CONFIGS[kind]}, headers=owner.headers)
        assert r.status_code == 201, r.text
        url = f"{P}/{kind}/{r.json()['id']}"
        return f"{url}/stop", url
    if kind == "groups":
        r = await client.post(f"{P}/groups", json={"content": GROUP}, headers=owner.headers)
        assert r.status_code == 201, r.text
        url = f"{P}/groups/{r.json()['id']}"
        return f"{url}/stop", url
    r = await client.post(f"{P}/{kind}/start", headers=owner.headers)
    assert r.status_code == 201, r.text
    read = f"{P}/tensorboards" if kind == "tensorboard" else f"{P}/notebook"
    return f"{P}/{kind}/stop", read


async def _status(client: Any, owner: Any, url: str) -> str:
    body = (await client.get(url, headers=owner.headers)).json()
    return (body["results"][0] if "results" in body else body)["last_status"]


@pytest.mark.parametrize(
    "kind", ["experiments", "jobs", "builds", "groups", "tensorboard", "notebook"]
)
async def test_a_stop_stops_even_when_what_it_does_beside_fails(
    backend: str, app: Any, client: Any, owner: Any, kind: str
) -> None:
    assert await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    stop, read = await _create(client, owner, kind)
    runtime = FakeRuntime()
    steps = [reconcile_runs, reconcile_groups, reconcile_plugins]
    rec = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=steps)
    for _ in range(3):
        await rec.reconcile_once()
        for key, state in list(runtime.states.items()):
            if kind == "jobs" and key.startswith("build-") and not state.done:
                runtime.set_status(key, "succeeded", exit_code=0)  # the job's image is built
    assert runtime.running_count() > 0
    for key in runtime.states:
        runtime.break_workload(key, operations=("cleanup",))

    r = await client.post(stop, headers=owner.headers)
    assert r.status_code == 200, r.text
    for _ in range(2):
        await rec.reconcile_once()
    assert await _status(client, owner, read) == "stopped"
    assert runtime.running_count() == 0  # the workloads were stopped all the same
