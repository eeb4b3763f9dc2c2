"""/docs (Swagger UI) and /redoc, rendered once by app/services/docs_pages.py."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.services.docs_pages import STATIC_PREFIX, assets_dir, docs_pages


def add_docs_routes(app: FastAPI) -> None:
    """Mount the assets and add /docs and /redoc (create the app with docs_url=redoc_url=None)."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=assets_dir()), name="docs-static")
    pages = docs_pages(f"{app.title} - API docs", app.openapi_url or "/openapi.json")
    for path, page in pages.items():
        app.add_api_route(path, page.respond, methods=["GET"], include_in_schema=False)
