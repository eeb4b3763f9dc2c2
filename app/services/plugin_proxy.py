"""Serve tensorboards and notebooks through plx (issue 16.4): who may open one, where its
workload listens, and the forwarding of HTTP (httpx, streamed both ways) and websockets
(`websockets`, jupyter's kernel channels and terminals).

The workloads listen where only plx reaches them (127.0.0.1 on a random port locally; a
ClusterIP Service behind a NetworkPolicy on Kubernetes) and a notebook's token is known only to
plx: the proxy adds it to every request it forwards, and strips the caller's own credentials
(plx token, plx cookies) so the workload never sees them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import anyio
import httpx
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from app.config import Settings
from app.errors import BadRequest, NotFound, PermissionDenied, PlxError, Unauthorized
from app.logic import plugin_access as access_logic
from app.logic.statuses import Status
from app.models import NotebookJob, TensorboardJob, User
from app.schemas.plugins import NotebookOut, TensorboardOut
from app.services import plugins as plugin_service
from app.services.projects import ProjectAccess, get_project
from app.services.users import Principal, authenticate

COOKIE_PURPOSE = "cookie"
TICKET_PURPOSE = "ticket"
# Headers that describe one hop, or carry the caller's plx credentials: never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
DROP_REQUEST = HOP_BY_HOP | {"host", "authorization", "cookie", "origin", "referer"}
DROP_RESPONSE = HOP_BY_HOP | {"content-length"}
MAX_WS_MESSAGE = 16 * 1024 * 1024  # jupyter's own default websocket message limit is 10 MiB
STREAM_CHUNK = 64 * 1024
# The row ids a proxied path may name (checked as the API checks its path parameters).
ROW_ID = TypeAdapter(Annotated[int, Field(ge=1, le=2**63 - 1)])


class BadGateway(PlxError):
    status_code = 502


@dataclass(frozen=True)
class PluginRoute:
    """One proxied plugin, as named by the URL."""

    kind: str  # "tensorboard" | "notebook"
    username: str
    project: str
    experiment_id: int | None = None
    group_id: int | None = None

    @property
    def prefix(self) -> str:
        ids = {"experiment_id": self.experiment_id, "group_id": self.group_id}
        return access_logic.plugin_prefix(self.kind, self.username, self.project, **ids)


def route_of(conn: HTTPConnection) -> PluginRoute:
    """The plugin a request names: its kind is the first segment of the matched route's path
    (`/notebook/...`, `/tensorboard/...`). A bad row id fails validation, as a path parameter."""
    kind = conn.scope["route"].path.split("/")[1]
    params = conn.path_params
    ids: dict[str, int] = {}
    for name in ("experiment_id", "group_id"):
        if name in params:
            try:
                ids[name] = ROW_ID.validate_python(params[name])
            except ValidationError as exc:
                errors = exc.errors(include_url=False)
                raise RequestValidationError(
                    [{**e, "loc": ("path", name, *e["loc"])} for e in errors]
                ) from None
    return PluginRoute(kind, params["username"], params["project"], **ids)


@dataclass(frozen=True)
class Upstream:
    """Where the workload listens, and the headers that authenticate plx to it."""

    origin: str  # scheme://host:port
    headers: dict[str, str]


# -- the signing key -----------------------------------------------------------------------------


def load_secret_key(settings: Settings) -> bytes:
    """`PLX_SECRET_KEY`, else a random key kept in `PLX_DATA_DIR/secret.key` (0600), created once.
    Several API replicas without a shared data directory must set `PLX_SECRET_KEY`."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / "secret.key"
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def app_secret_key(app: Any) -> bytes:
    """The app's key, loaded once."""
    key = getattr(app.state, "plugin_secret_key", None)
    if key is None:
        key = app.state.plugin_secret_key = load_secret_key(app.state.settings)
    return key


# -- links in API answers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Builds the proxy URL of a plugin for one caller of the API (with a ticket for a user)."""

    base_url: str  # scheme://host[:port][root_path], no trailing slash
    key: bytes
    user_id: int | None  # None: no ticket (a run-scoped token)

    def url(self, prefix: str) -> str:
        url = f"{self.base_url}{prefix}"
        if self.user_id is None:
            return url
        expires = int(time.time()) + access_logic.TICKET_SECONDS
        ticket = access_logic.sign(self.key, TICKET_PURPOSE, prefix, self.user_id, expires)
        return f"{url}?{urlencode({access_logic.TICKET_PARAM: ticket})}"


def links_for(request: Request, principal: Principal) -> Links:
    base = str(request.base_url).rstrip("/")
    user_id = None if principal.is_run_scoped else principal.user.id
    return Links(base_url=base, key=app_secret_key(request.app), user_id=user_id)


def row_prefix(row: Any, access: ProjectAccess) -> str:
    kind = "notebook" if isinstance(row, NotebookJob) else "tensorboard"
    return access_logic.plugin_prefix(
        kind,
        access.owner.username,
        access.project.name,
        experiment_id=getattr(row, "experiment_id", None),
        group_id=getattr(row, "experiment_group_id", None),
    )


# -- who is calling ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    principal: Principal
    via: str  # "header" | "ticket" | "cookie"


async def identify(
    session: AsyncSession,
    key: bytes,
    route: PluginRoute,
    *,
    authorization: str | None,
    ticket: str | None,
    cookie: str | None,
) -> Caller:
    """The caller from, in order, an `Authorization: token` header, a ticket, or the cookie.
    Run-scoped tokens never open a plugin. 401 without valid credentials."""
    if authorization:
        principal = await authenticate(session, authorization)
        if principal.is_run_scoped:
            raise PermissionDenied("A run token may only act on its own run.")
        return Caller(principal, "header")
    now = time.time()
    for purpose, value in ((TICKET_PURPOSE, ticket), (COOKIE_PURPOSE, cookie)):
        user_id = access_logic.verify(key, purpose, route.prefix, value, now)
        if user_id is None:
            continue
        user = await session.get(User, user_id)
        if user is not None and user.is_active:
            return Caller(Principal(user=user), purpose)
    raise Unauthorized()


def session_cookie(key: bytes, route: PluginRoute, user_id: int, seconds: int) -> str:
    return access_logic.sign(key, COOKIE_PURPOSE, route.prefix, user_id, int(time.time()) + seconds)


def check_origin(headers: Any) -> None:
    """A browser opens a websocket to any site with that site's cookies (SameSite does not
    stop every browser there): one from a page of another origin is refused, as jupyter
    itself does (plx does not forward `Origin`)."""
    origin = headers.get("origin")
    if origin and urlsplit(origin).netloc.lower() != (headers.get("host") or "").lower():
        raise PermissionDenied("Cross-origin websocket refused.")


# -- which workload ------------------------------------------------------------------------------


async def find_upstream(
    session: AsyncSession, principal: Principal, route: PluginRoute
) -> Upstream:
    """The running workload behind `route`, for a caller who may open it: a tensorboard for
    anyone who may read the project, a notebook (a shell on the workload) only for those who
    may write it. 404 as the API answers (another's private project, no such plugin running)."""
    notebook = route.kind == "notebook"
    access = await get_project(session, principal, route.username, route.project, write=notebook)
    if notebook:
        stmt = select(NotebookJob).where(NotebookJob.project_id == access.project.id)
        row = await session.scalar(stmt.order_by(NotebookJob.id.desc()).limit(1))
    else:
        target = plugin_service.Target()
        if route.experiment_id is not None:
            exp = await plugin_service.get_experiment(session, access, route.experiment_id)
            target = plugin_service.Target(experiment=exp)
        elif route.group_id is not None:
            group = await plugin_service.get_group(session, access, route.group_id)
            target = plugin_service.Target(group=group)
        stmt = plugin_service.tensorboard_stmt(access.project.id, target)
        row = await session.scalar(stmt.order_by(TensorboardJob.id.desc()).limit(1))
    if row is None or row.last_status != Status.RUNNING or not row.url:
        raise NotFound(f"No running {route.kind} here.")
    parts = urlsplit(row.url)
    headers = {}
    if notebook and row.token:
        headers["Authorization"] = f"token {row.token}"
    return Upstream(origin=f"{parts.scheme}://{parts.netloc}", headers=headers)


# -- forwarding ----------------------------------------------------------------------------------


def upstream_target(raw_path: str, query: str) -> str:
    """Path and query as sent, less the ticket (meant for plx only)."""
    pairs = [p for p in query.split("&") if p and not p.startswith(access_logic.TICKET_PARAM + "=")]
    return raw_path + ("?" + "&".join(pairs) if pairs else "")


def _request_headers(headers: Any, upstream: Upstream, cookie_names: set[str]) -> list:
    out = [(k, v) for k, v in headers.items() if k.lower() not in DROP_REQUEST]
    cookies = [
        part.strip()
        for line in headers.getlist("cookie")
        for part in line.split(";")
        if part.strip() and part.split("=", 1)[0].strip() not in cookie_names
    ]
    if cookies:  # the workload's own cookies (jupyter's `_xsrf`) pass, plx's do not
        out.append(("cookie", "; ".join(cookies)))
    out += list(upstream.headers.items())
    return out


async def forward_http(
    client: httpx.AsyncClient,
    request: Request,
    upstream: Upstream,
    target: str,
    *,
    drop_cookies: set[str],
) -> Response:
    """One request to the workload, bodies streamed both ways (the request's bounded by the
    body limit of app.ratelimit, as for every route)."""
    has_body = request.method not in ("GET", "HEAD", "OPTIONS")
    upstream_request = client.build_request(
        request.method,
        upstream.origin + target,
        headers=_request_headers(request.headers, upstream, drop_cookies),
        content=request.stream() if has_body else None,
    )
    try:
        response = await client.send(upstream_request, stream=True)
    except httpx.HTTPError as exc:
        raise BadGateway(f"The workload did not answer: {type(exc).__name__}.") from None
    headers = [
        (k, _local_location(v, upstream.origin) if k.lower() == "location" else v)
        for k, v in response.headers.multi_items()
        if k.lower() not in DROP_RESPONSE
    ]

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw(STREAM_CHUNK):
                yield chunk
        finally:
            await response.aclose()

    # Closed by the body's end, or after the answer when the body never started (a caller
    # that went away): the pooled connection is always given back.
    out = StreamingResponse(
        body(), status_code=response.status_code, background=BackgroundTask(response.aclose)
    )
    out.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return out


def _local_location(location: str, origin: str) -> str:
    """A redirect to the workload's own address becomes a path on plx."""
    return location[len(origin) :] or "/" if location.startswith(origin) else location


async def forward_websocket(
    websocket: WebSocket, upstream: Upstream, target: str, *, drop_cookies: set[str]
) -> None:
    """Open the workload's websocket, then accept the caller's with the subprotocol the
    workload chose, and pipe messages both ways until either side closes."""
    url = "ws" + upstream.origin.removeprefix("http") + target
    headers = [
        (k, v)
        for k, v in _request_headers(websocket.headers, upstream, drop_cookies)
        if not k.lower().startswith("sec-websocket")
    ]
    protocols = [Subprotocol(p) for p in websocket.scope.get("subprotocols") or []]
    try:
        remote = await ws_connect(
            url,
            additional_headers=headers,
            subprotocols=protocols or None,
            max_size=MAX_WS_MESSAGE,
            open_timeout=10,
            compression=None,
        )
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError):
        await websocket.close(code=1011, reason="The workload did not answer.")
        return
    async with remote:
        await websocket.accept(subprotocol=remote.subprotocol)
        async with anyio.create_task_group() as tasks:

            async def caller_to_workload() -> None:
                try:
                    while True:
                        message = await websocket.receive()
                        if message["type"] == "websocket.disconnect":
                            break
                        data = message.get("bytes")
                        await remote.send(data if data is not None else message.get("text", ""))
                except (WebSocketDisconnect, ConnectionClosed):
                    pass
                tasks.cancel_scope.cancel()

            async def workload_to_caller() -> None:
                with contextlib.suppress(ConnectionClosed, WebSocketDisconnect, RuntimeError):
                    async for data in remote:
                        if isinstance(data, bytes):
                            await websocket.send_bytes(data)
                        else:
                            await websocket.send_text(data)
                with contextlib.suppress(RuntimeError):
                    await websocket.close()
                tasks.cancel_scope.cancel()

            tasks.start_soon(caller_to_workload)
            tasks.start_soon(workload_to_caller)


# -- the proxy: who, where, then forward -----------------------------------------------------------


def _http_client(app: Any) -> httpx.AsyncClient:
    """One pooled client per app, closed with it (`http_client_hook`)."""
    client = getattr(app.state, "plugin_http", None)
    if client is None:
        timeout = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=10.0)
        client = app.state.plugin_http = httpx.AsyncClient(timeout=timeout, trust_env=False)
    return client


async def http_client_hook(app: Any) -> Callable[[], Awaitable[None]]:
    """Startup hook: its stop closes the proxy's client, if one was opened."""

    async def close() -> None:
        client = getattr(app.state, "plugin_http", None)
        if client is not None:
            app.state.plugin_http = None
            await client.aclose()

    return close


def _raw_path(scope: Mapping[str, Any]) -> str:
    """The path as sent: with its trailing slash (app.observability strips it for routing) and
    its percent-encoding."""
    raw = scope.get("plx.raw_path") or scope.get("raw_path") or scope["path"].encode()
    return raw.decode("latin-1")


async def _caller_and_upstream(
    session: AsyncSession, conn: HTTPConnection, route: PluginRoute, raw: str, key: bytes
) -> tuple[Caller, Upstream]:
    if access_logic.bad_path(raw):
        raise BadRequest("`..` is not allowed in a plugin path.")
    if conn.scope["type"] == "websocket":
        check_origin(conn.headers)
    caller = await identify(
        session,
        key,
        route,
        authorization=conn.headers.get("authorization"),
        ticket=conn.query_params.get(access_logic.TICKET_PARAM),
        cookie=conn.cookies.get(access_logic.cookie_name(route.prefix)),
    )
    return caller, await find_upstream(session, caller.principal, route)


async def proxy_http(request: Request, session: AsyncSession) -> Response:
    """Forward a request to the plugin its path names, for a caller who may open it; a
    browser's ticket is traded for the cookie instead (and dropped from the address bar)."""
    route = route_of(request)
    raw = _raw_path(request.scope)
    key = app_secret_key(request.app)
    caller, upstream = await _caller_and_upstream(session, request, route, raw, key)
    await session.commit()  # no transaction held while the workload answers
    target = upstream_target(raw, request.url.query)
    cookie = access_logic.cookie_name(route.prefix)
    if caller.via != TICKET_PURPOSE:
        client = _http_client(request.app)
        return await forward_http(client, request, upstream, target, drop_cookies={cookie})
    seconds = request.app.state.settings.plugin_cookie_seconds
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        cookie,
        session_cookie(key, route, caller.principal.user.id, seconds),
        max_age=seconds,
        path=route.prefix.rstrip("/"),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


async def proxy_websocket(websocket: WebSocket, close_codes: Mapping[int, int]) -> None:
    """Pipe a websocket to the plugin its path names; a refused caller's socket is closed with
    the code of the HTTP status (`close_codes`, 4400 for others)."""
    raw = _raw_path(websocket.scope)
    async with websocket.app.state.sessionmaker() as session:
        try:
            route = route_of(websocket)
            key = app_secret_key(websocket.app)
            _, upstream = await _caller_and_upstream(session, websocket, route, raw, key)
        except RequestValidationError:
            await websocket.close(code=4400, reason="Invalid path.")
            return
        except PlxError as exc:
            await websocket.close(code=close_codes.get(exc.status_code, 4400), reason=exc.message)
            return
    target = upstream_target(raw, websocket.url.query)
    cookie = access_logic.cookie_name(route.prefix)
    await forward_websocket(websocket, upstream, target, drop_cookies={cookie})


def _proxied_url(
    row: TensorboardJob | NotebookJob, access: ProjectAccess, links: Links | None
) -> str | None:
    # The workload's own address (row.url) stays internal: callers get the proxy's, with a
    # ticket for their browser (app/routers/plugin_proxy.py).
    live = plugin_service.is_live(row) and row.url and links is not None
    return links.url(row_prefix(row, access)) if live and links else None


def tensorboard_out(
    row: TensorboardJob, access: ProjectAccess, links: Links | None = None
) -> TensorboardOut:
    user = access.owner.username
    return TensorboardOut.from_row(
        row, access.unique_name, user=user, url=_proxied_url(row, access, links)
    )


def notebook_out(
    row: NotebookJob,
    access: ProjectAccess,
    links: Links | None = None,
    **extra: Any,
) -> NotebookOut:
    # A notebook is a shell on its workload: only those who may write the project get its URL.
    url = _proxied_url(row, access, links if access.can_write else None)
    return NotebookOut.from_row(
        row, access.unique_name, user=access.owner.username, url=url, **extra
    )
