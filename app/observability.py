"""Request metrics, JSON access logs with a request id, and the Prometheus text rendering.

`RequestMiddleware` is pure ASGI (no BaseHTTPMiddleware: it neither buffers bodies nor breaks
streaming). It takes `X-Request-ID` from the request when it is sane, else makes one, echoes it
on the response and writes one JSON line per request to the `plx.access` logger; it also strips
trailing slashes and applies the limits of app.ratelimit.
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
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ratelimit import BodyTooLarge, Limits, reply

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


def access_line(
    request_id: str, method: str, path: str, route: str, status: int, seconds: float, client: Any
) -> str:
    """The JSON access log line: the text `json.dumps` gives for the same dict (same keys, order
    and separators, ASCII escapes), built without the dict and the generic encoder."""
    host = client[0] if client else None
    return (
        f'{{"ts": "{datetime.now(UTC).isoformat()}", "level": "info", "msg": "request", '
        f'"request_id": {_json_str(request_id)}, "method": {_json_str(method)}, '
        f'"path": {_json_str(path)}, "route": {_json_str(route)}, "status": {int(status)}, '
        f'"duration_ms": {round(seconds * 1000, 3)!r}, '
        f'"client": {_json_str(host) if isinstance(host, str) else json.dumps(host)}}}'
    )


def _write_access_line(line: str) -> None:
    # Logger.info would first look for the caller's frame (findCaller) for a record whose
    # location nobody formats; the record goes through the same filters and handlers.
    access_log.handle(access_log.makeRecord(access_log.name, logging.INFO, "", 0, line, (), None))


class RequestMiddleware:
    """The app's one pure-ASGI middleware (one call and one `send` wrapper per request, where
    three middlewares stacked three calls and two wrappers):

    - every route answers with and without a trailing slash, without a redirect;
    - the request id: `X-Request-ID` from the request when it is sane, else a new one, in
      `scope["state"]["request_id"]` and echoed on the response;
    - `limits` (app.ratelimit): 429 over the rate limit, 413 over the body size limit;
    - request metrics by route template and one JSON access log line per request.
    """

    def __init__(self, app: ASGIApp, metrics: RequestMetrics, limits: Limits | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.limits = limits
        configure_access_log()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path[-1] == "/":
            scope = dict(scope)
            # The plugin proxy forwards the path as sent (app/routers/plugin_proxy.py).
            scope["plx.raw_path"] = scope.get("raw_path") or path.encode()
            scope["path"] = path = path.rstrip("/") or "/"
            raw = scope.get("raw_path")
            if raw:
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        if kind != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            limits = self.limits
            check = None if limits is None else limits.check(scope, path)
            if check is None:
                await self.app(scope, receive, send_with_id)
            elif isinstance(check, int):
                try:
                    await self.app(scope, limits.counting(receive, check), send_with_id)
                except BodyTooLarge as exc:
                    if started:
                        raise
                    await reply(send_with_id, 413, str(exc.detail), {})
            else:
                await reply(send_with_id, *check)
        finally:
            elapsed = time.perf_counter() - start
            route = route_template(scope)
            method = scope["method"]
            self.metrics.observe(method, route, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                _write_access_line(
                    access_line(
                        request_id, method, path, route, status, elapsed, scope.get("client")
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
