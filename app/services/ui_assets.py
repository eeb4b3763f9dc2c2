"""The dashboard's files: a single-page app built by Vite into `app/ui_dist` (package data).
Its client routes all answer the same `index.html`; hashed assets are immutable and served
precompressed when the browser accepts gzip."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.responses import FileResponse, HTMLResponse, Response

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
ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Accept-Encoding",
}
NOT_BUILT = """<!doctype html><html><head><title>plx</title></head><body>
<h1>The plx dashboard is not built</h1>
<p>This server has no built dashboard (<code>{path}</code> is missing). From a source checkout,
<code>make ui</code> builds it (it needs Node.js and npm); <code>make run</code> does so when npm is
on the PATH. The API works without it: see <a href="/docs">/docs</a>.</p></body></html>"""


def index_response() -> Response:
    """The app's page (503 with how to build it, when it is not built)."""
    index = UI_DIST / "index.html"
    if not index.is_file():
        return HTMLResponse(NOT_BUILT.format(path=index), status_code=503, headers=HTML_HEADERS)
    return FileResponse(index, media_type="text/html", headers=HTML_HEADERS)


def asset_response(name: str, accept_encoding: str) -> Response:
    """A file under `assets/` (404 outside it, and for the `.gz` copies themselves)."""
    assets = (UI_DIST / "assets").resolve()
    path = (assets / name).resolve()
    if not path.is_relative_to(assets) or not path.is_file() or path.suffix == ".gz":
        return Response(status_code=404)
    headers = dict(ASSET_HEADERS)
    compressed = path.with_name(path.name + ".gz")
    if "gzip" in accept_encoding and compressed.is_file():
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers["Content-Encoding"] = "gzip"
        return FileResponse(compressed, media_type=media, headers=headers)
    return FileResponse(path, headers=headers)
