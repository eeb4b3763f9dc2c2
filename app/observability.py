"""Request metrics, JSON access logs with a request id, and the Prometheus text rendering.

`ObservabilityMiddleware` is pure ASGI (no BaseHTTPMiddleware: it neither buffers bodies nor
breaks streaming). It takes `X-Request-ID` from the request when it is sane, else makes one,
echoes it on the response and writes one JSON line per request to the `plx.access` logger.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("plx.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Upper bounds (seconds) of the request duration histogram.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RequestMetrics:
    """Counters keyed by (method, route template, status); one instance per app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.rejected: dict[str, int] = defaultdict(int)  # 413 / 429 by reason

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, str(status))] += 1
            key = (method, route)
            counts = self.buckets.setdefault(key, [0] * (len(BUCKETS) + 1))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self.sums[key] += seconds


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/{username}/{project}`), never the raw path:
    raw paths would give one time series per object."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def configure_access_log() -> None:
    """One JSON object per line on stderr, unless the operator configured the logger."""
    if not access_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics
        configure_access_log()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = route_template(scope)
            self.metrics.observe(scope["method"], route, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info(
                    json.dumps(
                        {
                            "ts": datetime.now(UTC).isoformat(),
                            "level": "info",
                            "msg": "request",
                            "request_id": request_id,
                            "method": scope["method"],
                            "path": scope["path"],
                            "route": route,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 3),
                            "client": client[0] if client else None,
                        }
                    )
                )


def _labels(**labels: Any) -> str:
    def esc(value: Any) -> str:
        return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


class Exposition:
    """Builds the Prometheus text format (version 0.0.4)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: Any) -> None:
        label_text = _labels(**labels) if labels else ""
        self.lines.append(
            f"{name}{label_text} {value:g}"
            if isinstance(value, float)
            else f"{name}{label_text} {value}"
        )

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_requests(out: Exposition, metrics: RequestMetrics) -> None:
    with metrics._lock:
        requests = dict(metrics.requests)
        buckets = {k: list(v) for k, v in metrics.buckets.items()}
        sums = dict(metrics.sums)
        rejected = dict(metrics.rejected)
    out.family("plx_http_requests_total", "counter", "HTTP requests by route template and status")
    for (method, route, status), count in sorted(requests.items()):
        out.sample("plx_http_requests_total", count, method=method, route=route, status=status)
    out.family("plx_http_request_duration_seconds", "histogram", "HTTP request duration")
    for (method, route), counts in sorted(buckets.items()):
        for bound, count in zip(BUCKETS, counts, strict=False):
            out.sample(
                "plx_http_request_duration_seconds_bucket",
                count,
                method=method,
                route=route,
                le=f"{bound:g}",
            )
        out.sample(
            "plx_http_request_duration_seconds_bucket",
            counts[-1],
            method=method,
            route=route,
            le="+Inf",
        )
        out.sample(
            "plx_http_request_duration_seconds_count", counts[-1], method=method, route=route
        )
        out.sample(
            "plx_http_request_duration_seconds_sum",
            round(sums[(method, route)], 6),
            method=method,
            route=route,
        )
    out.family("plx_http_rejected_total", "counter", "Requests refused before routing")
    for reason, count in sorted(rejected.items()):
        out.sample("plx_http_rejected_total", count, reason=reason)
