"""GET /metrics: Prometheus text format (requests, reconciler, runs by status, leases)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select

from app.models import BuildJob, Experiment, ExperimentGroup, Job, Lease
from app.observability import Exposition, render_requests

router = APIRouter(tags=["health"])
RUN_MODELS = {
    "experiment": Experiment,
    "group": ExperimentGroup,
    "job": Job,
    "build": BuildJob,
}


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
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
    async with request.app.state.sessionmaker() as session:
        out.family("plx_runs", "gauge", "Runs by kind and last status")
        for kind, model in RUN_MODELS.items():
            rows = await session.execute(
                select(model.last_status, func.count()).group_by(model.last_status)
            )
            for status, count in sorted(rows.all(), key=lambda r: str(r[0])):
                out.sample("plx_runs", count, kind=kind, status=status or "none")
        leases = (
            await session.execute(select(func.count(), func.coalesce(func.sum(Lease.takeovers), 0)))
        ).one()
        await session.commit()
    out.family("plx_leases", "gauge", "Reconcile work leases in the table")
    out.sample("plx_leases", leases[0])
    out.family("plx_lease_takeovers_total", "counter", "Expired leases taken over by a replica")
    out.sample("plx_lease_takeovers_total", int(leases[1]))
    return PlainTextResponse(out.text(), media_type="text/plain; version=0.0.4; charset=utf-8")
