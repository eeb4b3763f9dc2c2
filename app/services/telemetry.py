"""What GET /metrics exposes beside the request metrics (app.observability): the reconciler's
and the database's figures, read at scrape time, and the scrape's token check.

The database gauges are cached for `PLX_METRICS_CACHE_SECONDS` (concurrent scrapes share one
query); with `PLX_METRICS_TOKEN` set, a scrape must send `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select

from app.config import Settings
from app.errors import PlxError
from app.kinds import GROUP, RUNS
from app.models import Lease

# The kinds counted by last status in `plx_runs`.
GAUGED_KINDS = (*RUNS, GROUP)


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
        for run_kind in GAUGED_KINDS:
            model = run_kind.model
            rows = await session.execute(
                select(model.last_status, func.count()).group_by(model.last_status)
            )
            for status, count in sorted(rows.all(), key=lambda r: str(r[0])):
                runs.append((run_kind.kind.value, status or "none", count))
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


@dataclass
class ScrapeFamilies:
    """The families read at scrape time, as a collector `generate_latest` renders."""

    families: list[Metric]

    def collect(self) -> Iterable[Metric]:
        return self.families


def reconciler_families(rec: Any) -> list[Metric]:
    up = GaugeMetricFamily("plx_reconciler_up", "1 when this replica runs a reconciler")
    up.add_metric([], 1 if rec is not None else 0)
    if rec is None:
        return [up]
    passes = CounterMetricFamily("plx_reconcile_passes", "Completed reconcile passes")
    passes.add_metric([], rec.passes)
    families: list[Metric] = [up, passes]
    last = getattr(rec, "last_pass_at", None)
    if last is not None:
        lag = GaugeMetricFamily(
            "plx_reconcile_lag_seconds", "Seconds since the last completed pass"
        )
        lag.add_metric([], round(max(0.0, time.time() - last), 3))
        families.append(lag)
    return families


def database_families(gauges: DatabaseGauges) -> list[Metric]:
    runs = GaugeMetricFamily("plx_runs", "Runs by kind and last status", labels=["kind", "status"])
    for kind, status, count in gauges.runs:
        runs.add_metric([kind, status], count)
    leases = GaugeMetricFamily("plx_leases", "Reconcile work leases in the table")
    leases.add_metric([], gauges.leases)
    takeovers = CounterMetricFamily("plx_lease_takeovers", "Expired leases taken over by a replica")
    takeovers.add_metric([], gauges.takeovers)
    return [runs, leases, takeovers]


async def scrape(request: Request) -> ScrapeFamilies:
    """The families of this scrape: the reconciler's, then the (cached) database gauges."""
    rec = getattr(request.app.state, "reconciler", None)
    return ScrapeFamilies(
        reconciler_families(rec) + database_families(await cached_gauges(request))
    )
