"""Request metrics (prometheus_client) and JSON access logs (python-json-logger) with a request id.

`RequestMiddleware` is pure ASGI (no BaseHTTPMiddleware: it neither buffers bodies nor breaks
streaming). It takes `X-Request-ID` from the request when it is sane, else makes one, echoes it
on the response and writes one JSON line per request to the `plx.access` logger; it also strips
trailing slashes, resolves the caller and applies the limits of app.ratelimit.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy.exc import DBAPIError
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.deps import PRINCIPAL_STATE, resolve_principal, websocket_credentials
from app.errors import Unauthorized, is_transient_db_error
from app.ratelimit import (
    EXEMPT_PATHS,
    LOGIN_PATH,
    MAX_LOGIN_BODY,
    BodyTooLarge,
    Limits,
    Refusal,
    address_key,
    reply,
)
from app.services.users import Principal

# The exposition had no `_created` series; a scrape stays one sample per counter and bucket.
disable_created_metrics()

access_log = logging.getLogger("plx.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Paths under /api and /ws that answer without credentials; every other one needs them, and a
# request without valid ones is answered 401 before its body is read. Paths outside /api and
# /ws (health, metrics, docs) are never asked for credentials here.
OPEN_API_PATHS = frozenset({LOGIN_PATH, "/api/v1/log_handler"})
OPEN_API_PREFIXES = ("/api/v1/versions/",)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Upper bounds (seconds) of the request duration histogram.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RequestMetrics:
    """The request metrics of one app, in its own registry (several apps may share a process):
    requests by (method, route template, status), their durations, and refusals by reason.

    Cost per request (timeit, 20,000 calls, against the hand-written code this replaced): metrics
    1.4 -> 6 us, metrics plus the access line 9 -> 53 us, against 1.4-2.2 ms of server CPU per
    request in bench/bench_runs.py: under 3%, so nothing here stays hand-written."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "plx_http_requests",
            "HTTP requests by route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.durations = Histogram(
            "plx_http_request_duration_seconds",
            "HTTP request duration",
            ("method", "route"),
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.rejected = Counter(
            "plx_http_rejected",
            "Requests refused before routing",
            ("reason",),
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.durations.labels(method, route).observe(seconds)

    def count_rejected(self, reason: str) -> None:
        """A request refused by the limits (413, 429) before routing."""
        self.rejected.labels(reason).inc()


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


class AccessLogFormatter(JsonFormatter):
    """One JSON object per access record: `ts` (the record's time, UTC), `level`, `msg`, then the
    request's fields in the order the middleware gives them."""

    def __init__(self) -> None:
        super().__init__(["ts", "level", "message"], rename_fields={"message": "msg"})

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        record.ts = datetime.fromtimestamp(record.created, UTC)
        record.level = record.levelname.lower()
        super().add_fields(log_data, record, message_dict)


def configure_access_log() -> None:
    """One JSON object per line on stderr, unless the operator configured the logger."""
    if not access_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(AccessLogFormatter())
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False


def access_record(
    request_id: str, method: str, path: str, route: str, status: int, seconds: float, client: Any
) -> logging.LogRecord:
    """The access log record of a request: message `request`, the request's fields as the
    record's attributes (what AccessLogFormatter writes)."""
    fields = {
        "request_id": request_id,
        "method": method,
        "path": path,
        "route": route,
        "status": int(status),
        "duration_ms": round(seconds * 1000, 3),
        "client": client[0] if client else None,
    }
    # Made directly rather than by Logger.info, which would first look for the caller's frame
    # (findCaller) for a location nobody formats.
    return access_log.makeRecord(
        access_log.name, logging.INFO, "", 0, "request", (), None, extra=fields
    )


def needs_credentials(path: str) -> bool:
    if not path.startswith(("/api/", "/ws/")):
        return False
    return path not in OPEN_API_PATHS and not path.startswith(OPEN_API_PREFIXES)


def caller_key(principal: Principal) -> str:
    """The rate-limit key of a caller: its user, or its run for a run's token."""
    if principal.is_run_scoped:
        return f"r:{principal.run_kind}:{principal.run_id}"
    return f"u:{principal.user.id}"


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return value.decode("latin-1")
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes `limit` bytes."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` giving `body` once, then what the client sends next (its disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def login_username(scope: Scope, body: bytes) -> str | None:
    """The username a login body names (JSON or a form, as the route reads it), lower-cased so
    that its spellings share one bucket; None when there is none to read."""
    try:
        if (_header(scope, b"content-type") or "").startswith(_FORM_TYPES):
            value: Any = (await Request(scope, _replay(body, _disconnect)).form()).get("username")
        else:
            data = json.loads(body)
            value = data.get("username") if isinstance(data, dict) else None
    except Exception:
        return None
    return value.lower()[:256] if isinstance(value, str) and value else None


async def _disconnect() -> Message:
    return {"type": "http.disconnect"}


class RequestMiddleware:
    """The app's one pure-ASGI middleware (one call and one `send` wrapper per request, where
    three middlewares stacked three calls and two wrappers):

    - every route answers with and without a trailing slash, without a redirect;
    - the request id: `X-Request-ID` from the request when it is sane, else a new one, in
      `scope["state"]["request_id"]` and echoed on the response;
    - the caller, resolved before routing and before the body is read (`scope["state"]
      ["principal"]`, which app.deps uses): a path that needs credentials answers 401 at once
      without valid ones, so an anonymous request costs no body parsing;
    - `limits` (app.ratelimit), keyed on that caller: 429 over the rate limit, failed logins,
      WebSocket handshakes and streams; 413 over the body size limit;
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
            await self._websocket(scope, receive, send, path)
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
            if limits is None or path in EXEMPT_PATHS:
                await self.app(scope, receive, send_with_id)
                return
            refusal, key, _ = await self._admit(scope, path)
            refusal = limits.rate(key) or refusal
            if refusal is not None:
                await reply(send_with_id, *refusal)
            elif path == LOGIN_PATH and scope["method"] == "POST":
                await self._login(scope, receive, send_with_id, lambda: status)
            else:
                check = limits.body(scope, path)
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
                access_log.handle(
                    access_record(
                        request_id, method, path, route, status, elapsed, scope.get("client")
                    )
                )

    async def _admit(self, scope: Scope, path: str) -> tuple[Refusal | None, str, Any]:
        """(refusal, limit key, principal) of a request: its caller resolved when the path needs
        credentials (401 without valid ones), else its client address."""
        state = scope.get("app") and scope["app"].state
        if not needs_credentials(path) or getattr(state, "sessionmaker", None) is None:
            return None, address_key(scope), None
        if scope["type"] == "websocket":
            authorization = websocket_credentials(HTTPConnection(scope))[0]
        else:
            authorization = _header(scope, b"authorization")
        try:
            principal = await resolve_principal(state, authorization)
        except Unauthorized as exc:
            return (401, exc.message, exc.headers or {}), address_key(scope), None
        except DBAPIError as exc:
            if not is_transient_db_error(exc):
                raise
            detail = "The database is briefly unavailable; retry."
            return (503, detail, {"Retry-After": "1"}), address_key(scope), None
        scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        return None, caller_key(principal), principal

    async def _login(self, scope: Scope, receive: Receive, send: Send, status: Any) -> None:
        """A login: one attempt taken from its address and its username before the password is
        hashed, given back unless the credentials were refused (400)."""
        assert self.limits is not None
        limits, keys = self.limits, [address_key(scope)]
        refusal = limits.login_attempt(keys)
        if refusal is not None:
            await reply(send, *refusal)
            return
        body = await _read_body(receive, MAX_LOGIN_BODY)
        if body is None:
            await reply(send, 413, f"Request body is larger than {MAX_LOGIN_BODY} bytes.", {})
            return
        username = await login_username(scope, body)
        if username is not None:
            refusal = limits.login_attempt(["user:" + username])
            if refusal is not None:
                limits.login_succeeded(keys)  # not attempted: the address keeps its token
                await reply(send, *refusal)
                return
            keys.append("user:" + username)
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            if status() != 400:
                limits.login_succeeded(keys)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """A WebSocket handshake: caller resolved (close code 4401 without valid credentials),
        handshakes rate-limited (4429) and streams per user capped (4429)."""
        limits = self.limits
        if limits is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        refusal, key, principal = await self._admit(scope, path)
        refusal = limits.handshake(key) or refusal
        slot = f"u:{principal.user.id}" if principal is not None else None
        if refusal is None and slot is not None:
            refusal = limits.open_stream(slot)
            if refusal is not None:
                slot = None
        if refusal is not None:
            await _refuse_handshake(receive, send, refusal)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if slot is not None:
                limits.streams.release(slot)


async def _refuse_handshake(receive: Receive, send: Send, refusal: Refusal) -> None:
    """Close before accepting, with the HTTP status as a private close code (4401, 4429...)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        reason = refusal[1][:120]  # a close frame's reason has at most 123 bytes
        await send({"type": "websocket.close", "code": 4000 + refusal[0], "reason": reason})
