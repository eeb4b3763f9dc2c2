"""Failed logins are limited by default, per username and per client address (issue 16.5)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.config import Settings
from app.main import create_app

LOGIN = "/api/v1/users/token"


def _client(app, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def test_failed_login_limit_is_on_by_default():
    assert Settings().login_failures_per_minute == 10
    limits = create_app(Settings(reconciler_enabled=False)).state.request_limits
    assert limits.logins is not None and limits.logins.capacity == 10


@pytest.fixture
def settings_overrides():
    # 3 a minute: one token back every 20 s, longer than the test (hashes take ~1 s here).
    return {"login_failures_per_minute": 3}


async def test_failed_logins_limited_per_username_and_per_address(app, owner, other):
    wrong = {"username": "alice", "password": "wrong-password"}
    right_bob = {"username": "bob", "password": "password123"}
    async with _client(app, "10.1.0.1") as a:
        # Concurrent guesses cannot overrun the limit: 3 are tried, the rest refused unhashed,
        # and the spent address refuses every username.
        replies = await asyncio.gather(
            *(a.post(LOGIN, json=wrong) for _ in range(6)), a.post(LOGIN, data=right_bob)
        )
        codes = [r.status_code for r in replies]
        assert sorted(codes[:6]) == [400] * 3 + [429] * 3 and codes[6] == 429, codes
        assert all(int(r.headers["retry-after"]) >= 1 for r in replies if r.status_code == 429)
    async with _client(app, "10.1.0.2") as b:
        # The username is spent, from any address and in any case, even with the right password.
        for name in ("alice", "ALICE"):
            r = await b.post(LOGIN, json={"username": name, "password": "password123"})
            assert r.status_code == 429, name
        # Successful logins do not count: bob logs in more often than the limit.
        for _ in range(5):
            assert (await b.post(LOGIN, data=right_bob)).status_code == 200
    # A malformed body counts against the address only.
    async with _client(app, "10.1.0.3") as c:
        codes = [(await c.post(LOGIN, content=b"{")).status_code for _ in range(4)]
        assert codes == [400, 400, 400, 429]
