"""GET /metrics: Prometheus text format (requests, reconciler, runs by status, leases).

The database gauges are cached for `PLX_METRICS_CACHE_SECONDS` (concurrent scrapes share one
query); with `PLX_METRICS_TOKEN` set, a scrape must send `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select

from app.config import Settings
from app.errors import PlxError
from app.models import BuildJob, Experiment, ExperimentGroup, Job, Lease
from app.observability import Exposition, render_requests

router = APIRouter(tags=["health"])
RUN_MODELS = {
    "experiment": Experiment,
    "group": ExperimentGroup,
    "job": Job,
    "build": BuildJob,
}


class MetricsUnauthorized(PlxError):
    status_code = 401

    def __init__(self) -> None:
        super().__init__(
            "A valid metrics token is required.", headers={"WWW-Authenticate": "Bearer"}
        )


@dataclass
class DatabaseGauges:
    runs: list[tuple[str, str, int]]  # (kind, status, count)
    leases: int
    takeovers: int


@dataclass
class GaugeCache:
    """The last database gauges and when they were read (monotonic clock)."""

    value: DatabaseGauges | None = None
    read_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def check_metrics_token(settings: Settings, authorization: str | None) -> None:
    if settings.metrics_token is None:
        return
    scheme, _, presented = (authorization or "").partition(" ")
    expected = settings.metrics_token.get_secret_value()
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    ):
        raise MetricsUnauthorized()


async def _read_gauges(request: Request) -> DatabaseGauges:
    runs: list[tuple[str, str, int]] = []
    async with request.app.state.sessionmaker() as session:
        for kind, model in RUN_MODELS.items():
            rows = await session.execute(
                select(model.last_status, func.count()).group_by(model.last_status)
            )
            for status, count in sorted(rows.all(), key=lambda r: str(r[0])):
                runs.append((kind, status or "none", count))
        leases = (
            await session.execute(select(func.count(), func.coalesce(func.sum(Lease.takeovers), 0)))
        ).one()
        await session.commit()
    return DatabaseGauges(runs=runs, leases=leases[0], takeovers=int(leases[1]))


async def cached_gauges(request: Request) -> DatabaseGauges:
    cache: GaugeCache = request.app.state.metrics_gauges
    ttl = request.app.state.settings.metrics_cache_seconds
    async with cache.lock:  # scrapes arriving together wait for one query, not one each
        if cache.value is None or time.monotonic() - cache.read_at >= ttl:
            cache.value = await _read_gauges(request)
            cache.read_at = time.monotonic()
        return cache.value


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    check_metrics_token(request.app.state.settings, request.headers.get("authorization"))
    out = Exposition()
    render_requests(out, request.app.state.request_metrics)
    rec = getattr(request.app.state, "reconciler", None)
    out.family("plx_reconciler_up", "gauge", "1 when this replica runs a reconciler")
    out.sample("plx_reconciler_up", 1 if rec is not None else 0)
    if rec is not None:
        out.family("plx_reconcile_passes_total", "counter", "Completed reconcile passes")
        out.sample("plx_reconcile_passes_total", rec.passes)
        last = getattr(rec, "last_pass_at", None)
        if last is not None:
            out.family(
                "plx_reconcile_lag_seconds", "gauge", "Seconds since the last completed pass"
            )
            out.sample("plx_reconcile_lag_seconds", round(max(0.0, time.time() - last), 3))
    gauges = await cached_gauges(request)
    out.family("plx_runs", "gauge", "Runs by kind and last status")
    for kind, status, count in gauges.runs:
        out.sample("plx_runs", count, kind=kind, status=status)
    out.family("plx_leases", "gauge", "Reconcile work leases in the table")
    out.sample("plx_leases", gauges.leases)
    out.family("plx_lease_takeovers_total", "counter", "Expired leases taken over by a replica")
    out.sample("plx_lease_takeovers_total", gauges.takeovers)
    return PlainTextResponse(out.text(), media_type="text/plain; version=0.0.4; charset=utf-8")
