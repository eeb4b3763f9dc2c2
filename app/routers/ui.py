"""The dashboard at `/` (files from app/services/ui_assets.py); outside the OpenAPI."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.services.ui_assets import asset_response, index_response

router = APIRouter(include_in_schema=False)


# The client routes on the path; the server answers each with the app's page.
@router.get("/")
@router.get("/login")
@router.get("/projects/{view:path}")
async def dashboard_page() -> Response:
    return index_response()


@router.get("/assets/{name:path}")
async def dashboard_asset(name: str, request: Request) -> Response:
    return asset_response(name, request.headers.get("accept-encoding", ""))
