"""AsyncClient: the same API, awaited (generated from one source with Client)."""

from __future__ import annotations

import asyncio
import sys

import pytest
from conftest import Server, unique

from plx_client import AsyncClient, models
from plx_client.errors import NotFound


def test_async_client(server: Server):
    async def scenario() -> None:
        async with AsyncClient(server.url, server.token) as c:
            assert (await c.whoami()).username == "admin"
            name = unique("a")
            await c.create_project(name)
            assert [p.name async for p in c.list_projects(query=f"name:{name}")] == [name]
            exp = await c.create_experiment(name, declarations={"lr": 1})
            await c.post_metrics(name, exp.id, [{"values": {"x": i}} for i in range(250)])
            xs = [m.values["x"] async for m in c.experiment_metrics(name, exp.id)]
            assert xs == list(range(250))
            cmd = f"{sys.executable} -c \"print('hello')\""
            run = await c.create_experiment(
                name, {"version": 1, "kind": "experiment", "run": {"cmd": cmd}}
            )
            lines = [line async for line in c.follow_logs(name, run.id, interval=0.2)]
            assert "hello" in lines
            group = await c.create_group(
                name,
                {"version": 1, "kind": "group", "hptuning": {"matrix": {"x": {"values": [1]}}}},
            )
            assert isinstance(group, models.GroupDetail)
            assert [s.status async for s in c.group_statuses(name, group.id)]
            with pytest.raises(NotFound):
                await c.get_experiment(name, 10**9)

    asyncio.run(scenario())
