"""Per-token request rate limits (429 + Retry-After) and a request body size limit (413).

Applied by the app's one pure-ASGI middleware (`app.observability.RequestMiddleware`). The rate
limit is a token bucket per `Authorization` value (per client IP when there is none):
`PLX_RATE_LIMIT_PER_MINUTE` tokens refill evenly over a minute and the bucket holds at most one
minute's worth, so a quiet client may burst. Default 0 = off: one embedded user should
never be throttled by the server they run; operators of a shared server set it (e.g. 600).
Buckets live in the process: with N replicas behind a balancer a client gets up to N times the
rate. Health and metrics endpoints are never limited.

The body limit (`PLX_MAX_BODY_BYTES`) applies to every route except the repo upload, which
enforces its own `PLX_MAX_UPLOAD_BYTES` while streaming: a declared Content-Length above the limit
is refused before reading, and a chunked body is counted as it streams.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

if TYPE_CHECKING:  # app.observability imports this module
    from app.observability import RequestMetrics

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_BUCKETS = 100_000


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

    def _evict(self, now: float) -> None:
        # Buckets refilled to capacity carry no state worth keeping.
        full = [
            k for k, (t, u) in self._buckets.items() if t + (now - u) * self.rate >= self.capacity
        ]
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]


def _client_key(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return "t:" + hashlib.sha256(value).hexdigest()[:32]
    client = scope.get("client")
    return "ip:" + (client[0] if client else "unknown")


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
    """The rate and body limits of one app, applied by `app.observability.RequestMiddleware`
    (one middleware for every per-request concern: fewer calls and wrappers per request)."""

    def __init__(
        self, *, per_minute: int, max_body_bytes: int, metrics: RequestMetrics | None = None
    ) -> None:
        self.buckets = TokenBuckets(per_minute) if per_minute > 0 else None
        self.max_body = max_body_bytes
        self.metrics = metrics

    def _count(self, reason: str) -> None:
        if self.metrics is not None:
            with self.metrics._lock:
                self.metrics.rejected[reason] += 1

    def check(self, scope: Scope, path: str) -> tuple[int, str, dict[str, str]] | int | None:
        """Of an http request: (status, detail, headers) to refuse it; else the body size to
        count the streamed body against; None when it need not be counted (health and metrics
        routes, the repo upload, or a declared Content-Length within the limit: the server never
        passes on more body than that)."""
        if path in EXEMPT_PATHS:
            return None
        if self.buckets is not None:
            wait = self.buckets.take(_client_key(scope))
            if wait > 0:
                self._count("rate_limit")
                retry = max(1, math.ceil(wait))
                detail = f"Request was throttled. Expected available in {retry} seconds."
                return 429, detail, {"Retry-After": str(retry)}
        if _is_upload(path):
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
