"""Per-request policy the pure logic layer reads: the operator's allow-list of Secrets and
ConfigMaps that polyaxonfiles may name (app/logic/refs.py)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.logic.refs import AllowedRefs, allowed_refs


class AllowedRefsMiddleware:
    """Every request validates polyaxonfiles against PLX_K8S_ALLOWED_SECRETS / _CONFIGMAPS."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed = AllowedRefs(
            secrets=frozenset(self.settings.k8s_allowed_secrets),
            configmaps=frozenset(self.settings.k8s_allowed_configmaps),
        )
        with allowed_refs(allowed):
            await self.app(scope, receive, send)
