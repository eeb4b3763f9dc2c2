"""Abuse limits: request rates (429 + Retry-After), failed logins, WebSocket handshakes and
streams, and the request body size (413).

Applied by the app's one pure-ASGI middleware (`app.observability.RequestMiddleware`), which
resolves the caller first, so every limit is keyed on who is calling, not on what they sent: a
user (`u:<id>`), a run's token (`r:<kind>:<id>`: many runs of one user each get their own), or
the client address when there are no valid credentials (a varied or re-cased bogus header lands
in its sender's address bucket).

- `PLX_RATE_LIMIT_PER_MINUTE`: a token bucket per caller, refilled evenly over a minute and
  holding at most one minute's worth, so a quiet client may burst. Default 0 = off: one embedded
  user should never be throttled by the server they run; operators of a shared server set it.
  WebSocket handshakes count as requests.
- `PLX_LOGIN_FAILURES_PER_MINUTE` (default 10): login attempts per username and per client
  address. Each attempt takes a token from both buckets before the password is hashed and a
  successful one gives them back, so concurrent guesses cannot overrun the limit.
- `PLX_WS_HANDSHAKES_PER_MINUTE` and `PLX_MAX_STREAMS_PER_USER`: WebSocket handshakes per caller
  and streams open at once per user.

Buckets live in the process: with N replicas behind a balancer a client gets up to N times the
rate. Health and metrics endpoints are never limited.

The body limit (`PLX_MAX_BODY_BYTES`) applies to every route except the code uploads (paths
ending in `/repo/upload`), which enforce `PLX_MAX_UPLOAD_BYTES` while streaming: a declared
Content-Length above the limit is refused before reading, and a chunked body is counted as it
streams.
"""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Protocol

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_BUCKETS = 100_000
LOGIN_PATH = "/api/v1/users/token"
# A login body is a username and a password (at most 4096 characters each).
MAX_LOGIN_BODY = 64 * 1024
# (status, detail, headers) of a refusal.
Refusal = tuple[int, str, dict[str, str]]


class RefusalCounter(Protocol):
    """Where refusals are counted (app.observability.RequestMetrics), without this module
    importing the middleware that applies it."""

    def count_rejected(self, reason: str) -> None: ...


def _is_upload(path: str) -> bool:
    return path.rstrip("/").endswith("/repo/upload")


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body is larger than {limit} bytes.")


class TokenBuckets:
    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token; 0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, updated = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - updated) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                if len(self._buckets) > MAX_BUCKETS:
                    self._evict(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def give_back(self, key: str) -> None:
        """Return a token taken for an attempt that turned out not to count."""
        with self._lock:
            found = self._buckets.get(key)
            if found is not None:
                self._buckets[key] = (min(self.capacity, found[0] + 1), found[1])

    def _evict(self, now: float) -> None:
        # Buckets refilled to capacity carry no state worth keeping.
        full = [
            k for k, (t, u) in self._buckets.items() if t + (now - u) * self.rate >= self.capacity
        ]
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]


def address_key(scope: Scope) -> str:
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


def throttled(wait: float) -> Refusal:
    retry = max(1, math.ceil(wait))
    detail = f"Request was throttled. Expected available in {retry} seconds."
    return 429, detail, {"Retry-After": str(retry)}


class StreamSlots:
    """Open streams per user, at most `cap` each (0: no cap)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        count = self._open.get(key, 0)
        if self.cap and count >= self.cap:
            return False
        self._open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def reply(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Limits:
    """The limits of one app, applied by `app.observability.RequestMiddleware` (one middleware
    for every per-request concern: fewer calls and wrappers per request)."""

    def __init__(
        self,
        *,
        per_minute: int,
        max_body_bytes: int,
        login_failures_per_minute: int = 0,
        ws_handshakes_per_minute: int = 0,
        max_streams_per_user: int = 0,
        metrics: RefusalCounter | None = None,
    ) -> None:
        self.buckets = TokenBuckets(per_minute) if per_minute > 0 else None
        self.max_body = max_body_bytes
        self.logins = (
            TokenBuckets(login_failures_per_minute) if login_failures_per_minute > 0 else None
        )
        self.handshakes = (
            TokenBuckets(ws_handshakes_per_minute) if ws_handshakes_per_minute > 0 else None
        )
        self.streams = StreamSlots(max_streams_per_user)
        self.metrics = metrics

    def _count(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.count_rejected(reason)

    def rate(self, key: str) -> Refusal | None:
        """The request rate of caller `key`: a refusal over the limit."""
        if self.buckets is None:
            return None
        wait = self.buckets.take(key)
        if wait > 0:
            self._count("rate_limit")
            return throttled(wait)
        return None

    def handshake(self, key: str) -> Refusal | None:
        refusal = self.rate(key)
        if refusal is None and self.handshakes is not None:
            wait = self.handshakes.take(key)
            if wait > 0:
                self._count("ws_handshake")
                refusal = throttled(wait)
        return refusal

    def open_stream(self, user_key: str) -> Refusal | None:
        """Take one of the user's stream slots, or refuse over the cap."""
        if self.streams.acquire(user_key):
            return None
        self._count("streams")
        return 429, "Too many streams open at once for this user.", {}

    def login_attempt(self, keys: list[str]) -> Refusal | None:
        """Take a login attempt from each of `keys` (an address, a username), or refuse it
        (taking none)."""
        if self.logins is None:
            return None
        taken: list[str] = []
        for key in keys:
            wait = self.logins.take(key)
            if wait > 0:
                for done in taken:
                    self.logins.give_back(done)
                self._count("login_failures")
                return throttled(wait)
            taken.append(key)
        return None

    def login_succeeded(self, keys: list[str]) -> None:
        if self.logins is not None:
            for key in keys:
                self.logins.give_back(key)

    def body(self, scope: Scope, path: str) -> Refusal | int | None:
        """Of an http request: a refusal over the body limit; else the body size to count the
        streamed body against; None when it need not be counted (health and metrics routes, the
        code uploads, or a declared Content-Length within the limit: the server never passes on
        more body than that)."""
        if path in EXEMPT_PATHS or _is_upload(path):
            return None
        limit = self.max_body
        declared = _content_length(scope)
        if declared is None:
            return limit
        if declared > limit:
            self._count("body_too_large")
            return 413, f"Request body is larger than {limit} bytes.", {}
        return None

    def counting(self, receive: Receive, limit: int) -> Receive:
        """`receive` raising BodyTooLarge once the body passes `limit` bytes."""
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    self._count("body_too_large")
                    raise BodyTooLarge(limit)
            return message

        return counting_receive
