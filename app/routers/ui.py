"""The dashboard: a single-page app built by Vite into `app/ui_dist` (package data), served at
`/`. Its client routes (`/login`, `/projects/...`) all answer the same `index.html`; hashed assets
are immutable and served precompressed when the browser accepts gzip."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

UI_DIST = Path(__file__).resolve().parent.parent / "ui_dist"

# No inline script or style, nothing from another origin, never framed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HTML_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
NOT_BUILT = """<!doctype html><html><head><title>plx</title></head><body>
<h1>The plx dashboard is not built</h1>
<p>This server has no built dashboard (<code>{path}</code> is missing). From a source checkout,
<code>make ui</code> builds it (it needs Node.js and npm); <code>make run</code> does so when npm is
on the PATH. The API works without it: see <a href="/docs">/docs</a>.</p></body></html>"""

router = APIRouter(include_in_schema=False)


def _index() -> Response:
    index = UI_DIST / "index.html"
    if not index.is_file():
        return HTMLResponse(NOT_BUILT.format(path=index), status_code=503, headers=HTML_HEADERS)
    return FileResponse(index, media_type="text/html", headers=HTML_HEADERS)


@router.get("/")
async def dashboard_root() -> Response:
    return _index()


@router.get("/login")
async def dashboard_login() -> Response:
    return _index()


@router.get("/projects/{view:path}")
async def dashboard_view(view: str) -> Response:  # noqa: ARG001 - the client routes on it
    return _index()


@router.get("/assets/{name:path}")
async def dashboard_asset(name: str, request: Request) -> Response:
    assets = (UI_DIST / "assets").resolve()
    path = (assets / name).resolve()
    if not path.is_relative_to(assets) or not path.is_file() or path.suffix == ".gz":
        return Response(status_code=404)
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    compressed = path.with_name(path.name + ".gz")
    if "gzip" in request.headers.get("accept-encoding", "") and compressed.is_file():
        import mimetypes

        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers["Content-Encoding"] = "gzip"
        return FileResponse(compressed, media_type=media, headers=headers)
    return FileResponse(path, headers=headers)
