"""Tensorboards and notebooks, served through plx (polyaxon-v0.md 7.4: `/notebook/{user}/{project}/`
and `/tensorboard/...`, as v0's `api/plugins/urls.py`), HTTP and websockets; the proxying is
app/services/plugin_proxy.py.

Credentials: `Authorization: token <key>`, or the cookie a ticket from an API answer (the
plugin's `url`) is traded for; see app/logic/plugin_access.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import Response

from app.deps import SessionDep
from app.routers.streams import CLOSE_CODES
from app.services import plugin_proxy as service

# Out of the OpenAPI: these forward whatever the workload serves, for every method (their
# generated operation ids would change from run to run), and the README documents them.
router = APIRouter(tags=["plugins"], include_in_schema=False)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
TENSORBOARD = "/tensorboard/{username}/{project}"
# The experiment and group tensorboards before the project's, whose `{path:path}` matches them.
PLUGINS = [
    "/notebook/{username}/{project}",
    TENSORBOARD + "/experiments/{experiment_id:int}",
    TENSORBOARD + "/groups/{group_id:int}",
    TENSORBOARD,
]
http_client_hook = service.http_client_hook  # app.main registers it as a startup hook


async def plugin_http(request: Request, session: SessionDep) -> Response:
    return await service.proxy_http(request, session)


async def plugin_websocket(websocket: WebSocket) -> None:
    await service.proxy_websocket(websocket, CLOSE_CODES)


for plugin in PLUGINS:
    router.add_api_route(plugin, plugin_http, methods=METHODS)
    router.add_api_route(plugin + "/{path:path}", plugin_http, methods=METHODS)
    router.add_api_websocket_route(plugin + "/{path:path}", plugin_websocket)
