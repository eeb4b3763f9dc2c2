"""`POST .../groups/plan` and `POST .../groups` refuse a matrix larger than
PLX_MAX_GROUP_EXPERIMENTS before building it (a `linspace: 0:1:1000000000` once allocated tens
of GB), and write nothing."""

from __future__ import annotations

import time

import pytest

GROUPS = "/api/v1/alice/p/groups"


def _content(matrix: str, algorithm: str = "grid_search: {n_experiments: 2}") -> str:
    return (
        "version: 1\nkind: group\nhptuning:\n  "
        + algorithm
        + "\n  matrix:\n    lr: "
        + matrix
        + "\nrun: {cmd: 'echo {{ lr }}'}\n"
    )


@pytest.fixture
def settings_overrides():
    return {"max_group_experiments": 50}


async def test_huge_and_over_limit_matrices_answer_400(client, owner):
    h = owner.headers
    await client.post("/api/v1/projects", json={"name": "p"}, headers=h)
    for matrix, words in (
        ("{linspace: '0:1:1000000000'}", "1000000000 values, more than the 50 allowed"),
        ("{range: '0:1000000000000:1'}", "1000000000000 values"),
        ("{geomspace: '1:2:1000000000'}", "1000000000 values"),
        ("{logspace: '0:1:51'}", "51 values, more than the 50 allowed"),
    ):
        for path in (f"{GROUPS}/plan", GROUPS):
            started = time.monotonic()
            r = await client.post(path, json={"content": _content(matrix)}, headers=h)
            assert r.status_code == 400, (path, matrix, r.text)
            assert words in r.json()["detail"], r.text
            assert "PLX_MAX_GROUP_EXPERIMENTS" in r.json()["detail"]
            assert time.monotonic() - started < 2
    r = await client.get(GROUPS, headers=h)
    assert r.json()["count"] == 0


async def test_within_the_limit_plans_and_creates(client, owner):
    h = owner.headers
    await client.post("/api/v1/projects", json={"name": "p"}, headers=h)
    content = _content("{linspace: '0:1:50'}")
    r = await client.post(f"{GROUPS}/plan", json={"content": content}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["space_size"] == 50 and r.json()["num_experiments"] == 2
    r = await client.post(GROUPS, json={"content": content}, headers=h)
    assert r.status_code == 201, r.text
