"""/docs (Swagger UI) and /redoc with their assets served by plx, from the fastapi-offline package.

No CDN: the page where users paste tokens loads only same-origin scripts, pinned by a
Content-Security-Policy (the one inline Swagger UI script by its hash), and works on a cluster
without internet.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PREFIX = "/docs-static"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def assets_dir() -> Path:
    return Path(str(importlib.resources.files("fastapi_offline") / "static"))


def page_policy(html: str) -> str:
    """The CSP of a docs page: same-origin assets, its own inline scripts by hash, no framing."""
    scripts = ["'self'"] + [
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE_SCRIPT.findall(html)
    ]
    return "; ".join(
        [
            "default-src 'none'",
            "script-src " + " ".join(scripts),
            # Swagger UI and ReDoc set inline styles, draw icons from data: URIs, and ReDoc
            # searches in a blob: worker.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "worker-src 'self' blob:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _page(response: HTMLResponse) -> tuple[bytes, str]:
    body = bytes(response.body)
    return body, page_policy(body.decode())


def add_docs_routes(app: FastAPI) -> None:
    """Mount the assets and add /docs and /redoc (create the app with docs_url=redoc_url=None)."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=assets_dir()), name="docs-static")
    title = f"{app.title} - API docs"
    swagger, swagger_csp = _page(
        get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PREFIX}/favicon.png",
            oauth2_redirect_url=None,
        )
    )
    redoc, redoc_csp = _page(
        get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            redoc_js_url=f"{STATIC_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
    )

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger, headers={"Content-Security-Policy": swagger_csp})

    @app.get("/redoc", include_in_schema=False)
    async def redoc_ui() -> HTMLResponse:
        return HTMLResponse(redoc, headers={"Content-Security-Policy": redoc_csp})
