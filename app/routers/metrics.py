"""GET /metrics: Prometheus text format (requests, reconciler, runs by status, leases).

The database gauges are cached for `PLX_METRICS_CACHE_SECONDS` (concurrent scrapes share one
query); with `PLX_METRICS_TOKEN` set, a scrape must send `Authorization: Bearer <token>`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from app.services.telemetry import check_metrics_token, scrape

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    check_metrics_token(request.app.state.settings, request.headers.get("authorization"))
    requests = generate_latest(request.app.state.request_metrics.registry)
    text = requests + generate_latest(await scrape(request))
    return PlainTextResponse(text, media_type=CONTENT_TYPE_PLAIN_0_0_4)
