"""Anonymous requests cannot stall the server (issue 16.6): no body is read before credentials
are checked, password hashing runs off the event loop in a bounded pool, and bodies outside code
uploads are limited to a few MiB."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from app import security
from app.config import Settings

CHUNK = b"x" * 65536


class Body:
    """A request body that counts how much of it the server pulled."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self):
        yield b'{"name": "big", "description": "'
        for _ in range(self.chunks):
            self.pulled += 1
            yield CHUNK
        yield b'"}'


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "token not-a-token"}, {"Authorization": "Bearer x"}],
    ids=["anonymous", "invalid", "other-scheme"],
)
async def test_unauthenticated_body_is_never_read(client, owner, headers):
    for method, url in (("POST", "/api/v1/projects"), ("PUT", "/api/v1/alice/p/repo/upload")):
        body = Body(chunks=200)  # 12.5 MiB
        r = await client.request(
            method, url, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert r.status_code == 401 and r.headers["www-authenticate"] == "token", url
        assert body.pulled == 0, (url, body.pulled)
    # With valid credentials the body is read (and refused past the limit).
    body = Body(chunks=200)
    r = await client.post(
        "/api/v1/projects",
        content=body,
        headers={**owner.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and body.pulled > 0


async def test_open_routes_need_no_credentials(client):
    for url in (
        "/healthz",
        "/api/v1/versions/cli/",
        "/api/v1/versions/platform",
        "/api/v1/log_handler",
        "/openapi.json",
        "/docs",
    ):
        r = await client.get(url, headers={"Authorization": "token stale"})
        assert r.status_code == 200, url
    r = await client.post("/api/v1/users/token", data={"username": "x", "password": "y"})
    assert r.status_code == 400


async def test_password_hashing_runs_off_the_loop_in_a_bounded_pool(client, owner, monkeypatch):
    loop_thread = threading.current_thread()
    seen: list[threading.Thread] = []
    running, peak = 0, 0
    lock = threading.Lock()
    real = security.verify_password

    def spy(password_hash: str, password: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            seen.append(threading.current_thread())
        try:
            return real(password_hash, password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(security, "verify_password", spy)
    security.configure_hash_pool(2)
    try:
        body = {"username": "alice", "password": "password123"}
        replies = await asyncio.gather(
            *(client.post("/api/v1/users/token", json=body) for _ in range(6))
        )
    finally:
        security.configure_hash_pool(Settings().password_hash_workers)
    assert [r.status_code for r in replies] == [200] * 6
    assert len(seen) == 6 and loop_thread not in seen
    assert peak <= 2


def test_default_body_limit_is_a_few_mib_and_holds_a_full_metric_batch():
    settings = Settings()
    assert settings.max_body_bytes <= 8 * 1024 * 1024
    assert settings.max_upload_bytes >= 100 * 1024 * 1024  # code uploads keep theirs
    # The largest metric post, as polyaxon-client 0.3.9 sends it, fits.
    row = {
        "values": {"loss": 0.123456789, "accuracy": 0.987654321, "step": 123456},
        "created_at": "2026-11-23 12:16:05.779213+00:00",
    }
    batch = json.dumps([row] * settings.max_metrics_per_request).encode()
    assert len(batch) < settings.max_body_bytes
