"""Tensorboards and notebooks, served through plx (polyaxon-v0.md 7.4: `/notebook/{user}/{project}/`
and `/tensorboard/...`, as v0's `api/plugins/urls.py`), HTTP and websockets.

Credentials: `Authorization: token <key>`, or the cookie a ticket from an API answer (the
plugin's `url`) is traded for; see app/logic/plugin_access.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import httpx
from fastapi import APIRouter, Path, Request, WebSocket
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import SessionDep
from app.errors import BadRequest, PlxError
from app.logic import plugin_access as access_logic
from app.routers.streams import CLOSE_CODES
from app.services import plugin_proxy as service

# Out of the OpenAPI: these forward whatever the workload serves, for every method (their
# generated operation ids would change from run to run), and the README documents them.
router = APIRouter(tags=["plugins"], include_in_schema=False)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
NOTEBOOK = "/notebook/{username}/{project}"
TENSORBOARD = "/tensorboard/{username}/{project}"
EXPERIMENT_TB = TENSORBOARD + "/experiments/{experiment_id:int}"
GROUP_TB = TENSORBOARD + "/groups/{group_id:int}"
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
DESCRIPTION = (
    "Forwarded to the workload (HTTP and websockets), for a caller who may open it: "
    "`Authorization: token <key>`, or the cookie that the `?plx_ticket=` of the plugin's `url` "
    "(from the API) sets. Tensorboards: readers of the project; notebooks: writers."
)


def _http_client(request: Request) -> httpx.AsyncClient:
    """One pooled client per app, closed with it (a startup hook returns its closer)."""
    state = request.app.state
    client = getattr(state, "plugin_http", None)
    if client is None:
        timeout = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=10.0)
        client = state.plugin_http = httpx.AsyncClient(timeout=timeout, trust_env=False)
    return client


async def http_client_hook(app: object) -> Callable[[], Awaitable[None]]:
    """Startup hook: its stop closes the proxy's client, if one was opened."""

    async def close() -> None:
        client = getattr(app.state, "plugin_http", None)  # type: ignore[attr-defined]
        if client is not None:
            app.state.plugin_http = None  # type: ignore[attr-defined]
            await client.aclose()

    return close


def _raw_path(scope: dict) -> str:
    """The path as sent: with its trailing slash (app.observability strips it for routing) and
    its percent-encoding."""
    raw = scope.get("plx.raw_path") or scope.get("raw_path") or scope["path"].encode()
    return raw.decode("latin-1")


async def _proxy(request: Request, session: AsyncSession, route: service.PluginRoute) -> Response:
    raw = _raw_path(request.scope)
    if access_logic.bad_path(raw):
        raise BadRequest("`..` is not allowed in a plugin path.")
    key = service.app_secret_key(request.app)
    cookie = access_logic.cookie_name(route.prefix)
    caller = await service.identify(
        session,
        key,
        route,
        authorization=request.headers.get("authorization"),
        ticket=request.query_params.get(access_logic.TICKET_PARAM),
        cookie=request.cookies.get(cookie),
    )
    upstream = await service.find_upstream(session, caller.principal, route)
    await session.commit()  # no transaction held while the workload answers
    target = service.upstream_target(raw, request.url.query)
    if caller.via != "ticket":
        return await service.forward_http(
            _http_client(request), request, upstream, target, drop_cookies={cookie}
        )
    # A browser's ticket: traded for the cookie, and dropped from the address bar.
    seconds = request.app.state.settings.plugin_cookie_seconds
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        cookie,
        service.session_cookie(key, route, caller.principal.user.id, seconds),
        max_age=seconds,
        path=route.prefix.rstrip("/"),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


async def _proxy_ws(websocket: WebSocket, route: service.PluginRoute) -> None:
    raw = _raw_path(websocket.scope)
    key = service.app_secret_key(websocket.app)
    cookie = access_logic.cookie_name(route.prefix)
    async with websocket.app.state.sessionmaker() as session:
        try:
            if access_logic.bad_path(raw):
                raise BadRequest("`..` is not allowed in a plugin path.")
            service.check_origin(websocket.headers)
            caller = await service.identify(
                session,
                key,
                route,
                authorization=websocket.headers.get("authorization"),
                ticket=websocket.query_params.get(access_logic.TICKET_PARAM),
                cookie=websocket.cookies.get(cookie),
            )
            upstream = await service.find_upstream(session, caller.principal, route)
        except PlxError as exc:
            await websocket.close(code=CLOSE_CODES.get(exc.status_code, 4400), reason=exc.message)
            return
    target = service.upstream_target(raw, websocket.url.query)
    await service.forward_websocket(websocket, upstream, target, drop_cookies={cookie})


# -- notebook ------------------------------------------------------------------------------------


@router.api_route(
    NOTEBOOK, methods=METHODS, summary="The project's notebook", description=DESCRIPTION
)
@router.api_route(
    NOTEBOOK + "/{path:path}",
    methods=METHODS,
    summary="The project's notebook (any path below it)",
    description=DESCRIPTION,
)
async def notebook_proxy(
    username: str, project: str, request: Request, session: SessionDep
) -> Response:
    return await _proxy(request, session, service.PluginRoute("notebook", username, project))


@router.websocket(NOTEBOOK + "/{path:path}")
async def notebook_proxy_ws(websocket: WebSocket, username: str, project: str) -> None:
    await _proxy_ws(websocket, service.PluginRoute("notebook", username, project))


# -- tensorboards (the experiment and group ones first: the project one matches any path) ----------


@router.api_route(
    EXPERIMENT_TB, methods=METHODS, summary="An experiment's tensorboard", description=DESCRIPTION
)
@router.api_route(
    EXPERIMENT_TB + "/{path:path}",
    methods=METHODS,
    summary="An experiment's tensorboard (any path below it)",
    description=DESCRIPTION,
)
async def experiment_tensorboard_proxy(
    username: str,
    project: str,
    experiment_id: RowId,
    request: Request,
    session: SessionDep,
) -> Response:
    route = service.PluginRoute("tensorboard", username, project, experiment_id=experiment_id)
    return await _proxy(request, session, route)


@router.api_route(
    GROUP_TB, methods=METHODS, summary="A group's tensorboard", description=DESCRIPTION
)
@router.api_route(
    GROUP_TB + "/{path:path}",
    methods=METHODS,
    summary="A group's tensorboard (any path below it)",
    description=DESCRIPTION,
)
async def group_tensorboard_proxy(
    username: str,
    project: str,
    group_id: RowId,
    request: Request,
    session: SessionDep,
) -> Response:
    route = service.PluginRoute("tensorboard", username, project, group_id=group_id)
    return await _proxy(request, session, route)


@router.api_route(
    TENSORBOARD, methods=METHODS, summary="The project's tensorboard", description=DESCRIPTION
)
@router.api_route(
    TENSORBOARD + "/{path:path}",
    methods=METHODS,
    summary="The project's tensorboard (any path below it)",
    description=DESCRIPTION,
)
async def project_tensorboard_proxy(
    username: str, project: str, request: Request, session: SessionDep
) -> Response:
    return await _proxy(request, session, service.PluginRoute("tensorboard", username, project))


@router.websocket(EXPERIMENT_TB + "/{path:path}")
async def experiment_tensorboard_proxy_ws(
    websocket: WebSocket, username: str, project: str, experiment_id: int
) -> None:
    route = service.PluginRoute("tensorboard", username, project, experiment_id=experiment_id)
    await _proxy_ws(websocket, route)


@router.websocket(GROUP_TB + "/{path:path}")
async def group_tensorboard_proxy_ws(
    websocket: WebSocket, username: str, project: str, group_id: int
) -> None:
    route = service.PluginRoute("tensorboard", username, project, group_id=group_id)
    await _proxy_ws(websocket, route)


@router.websocket(TENSORBOARD + "/{path:path}")
async def project_tensorboard_proxy_ws(websocket: WebSocket, username: str, project: str) -> None:
    await _proxy_ws(websocket, service.PluginRoute("tensorboard", username, project))
