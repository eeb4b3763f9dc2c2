"""/docs (Swagger UI) and /redoc pages with their assets served by plx, from the fastapi-offline
package.

No CDN: the page where users paste tokens loads only same-origin scripts, pinned by a
Content-Security-Policy (the one inline Swagger UI script by its hash), and works on a cluster
without internet.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

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


@dataclass(frozen=True)
class DocsPage:
    """A page rendered once, answered with the CSP that its inline scripts need."""

    body: bytes
    csp: str

    @classmethod
    def of(cls, rendered: HTMLResponse) -> DocsPage:
        body = bytes(rendered.body)
        return cls(body, page_policy(body.decode()))

    async def respond(self) -> HTMLResponse:
        return HTMLResponse(self.body, headers={"Content-Security-Policy": self.csp})


def docs_pages(title: str, openapi_url: str) -> dict[str, DocsPage]:
    """The pages by path: Swagger UI at /docs, ReDoc at /redoc."""
    favicon = f"{STATIC_PREFIX}/favicon.png"
    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
        swagger_favicon_url=favicon,
        oauth2_redirect_url=None,
    )
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=title,
        redoc_js_url=f"{STATIC_PREFIX}/redoc.standalone.js",
        redoc_favicon_url=favicon,
        with_google_fonts=False,
    )
    return {"/docs": DocsPage.of(swagger), "/redoc": DocsPage.of(redoc)}
