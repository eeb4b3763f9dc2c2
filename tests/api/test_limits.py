"""Rate limits (429 + Retry-After) and body size limits (413)."""

from __future__ import annotations

import pytest

from app.ratelimit import TokenBuckets


@pytest.fixture
def settings_overrides():
    return {"rate_limit_per_minute": 5, "max_body_bytes": 2000}


def test_token_bucket_refills_evenly():
    buckets = TokenBuckets(60)  # one per second, burst 60
    assert all(buckets.take("k", now=0.0) == 0 for _ in range(60))
    assert buckets.take("k", now=0.0) == pytest.approx(1.0)
    assert buckets.take("k", now=0.5) == pytest.approx(0.5)
    assert buckets.take("k", now=1.0) == 0
    assert buckets.take("other", now=1.0) == 0  # buckets are per key


async def test_rate_limit_per_token_then_anonymous(client, owner, other):
    for _ in range(5):
        r = await client.get("/api/v1/users", headers=owner.headers)
        assert r.status_code == 200
    r = await client.get("/api/v1/users", headers=owner.headers)
    assert r.status_code == 429 and r.json()["detail"].startswith("Request was throttled")
    assert 1 <= int(r.headers["retry-after"]) <= 12
    assert r.headers["x-request-id"]
    # Another token has its own bucket; health and metrics are never limited.
    assert (await client.get("/api/v1/users", headers=other.headers)).status_code == 200
    for _ in range(8):
        assert (await client.get("/healthz")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert 'plx_http_rejected_total{reason="rate_limit"} 1' in metrics
    # Anonymous callers share one bucket per client address.
    codes = [(await client.get("/api/v1/versions/cli")).status_code for _ in range(6)]
    assert codes[-1] == 429


async def test_body_limit_declared_and_streamed(client, owner):
    r = await client.post(
        "/api/v1/projects", json={"name": "p", "description": "x" * 5000}, headers=owner.headers
    )
    assert r.status_code == 413 and "2000 bytes" in r.json()["detail"]

    async def chunks():
        yield b'{"name": "q", "description": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    r = await client.post(
        "/api/v1/projects",
        content=chunks(),
        headers={**owner.headers, "content-type": "application/json"},
    )
    assert r.status_code == 413, r.text
    r = await client.get("/api/v1/alice/q", headers=owner.headers)
    assert r.status_code == 404  # nothing was created
    r = await client.post("/api/v1/projects", json={"name": "ok"}, headers=owner.headers)
    assert r.status_code == 201
