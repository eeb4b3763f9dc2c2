"""Application assembly: `create_app(settings)` builds the FastAPI app and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from app import composition  # noqa: F401 - registers the Kubernetes runtime (app.runtimes)
from app.config import Settings
from app.db import make_engine, make_read_sessionmaker, make_sessionmaker, session_scope
from app.deps import guard_run_tokens
from app.errors import add_exception_handlers
from app.headers import SecurityHeadersMiddleware
from app.observability import RequestMetrics, RequestMiddleware
from app.policy import AllowedRefsMiddleware
from app.ratelimit import Limits
from app.reconciler.groups import reconcile_groups
from app.reconciler.loop import start_reconciler
from app.reconciler.plugins import reconcile_plugins
from app.reconciler.runs import RUN_STEPS
from app.routers import (
    admin_users,
    bookmarks,
    builds,
    cluster,
    dashboard,
    events,
    experiments,
    groups,
    health,
    jobs,
    plugin_proxy,
    projects,
    streams,
    ui,
    users,
    versions,
)
from app.routers import code as code_routes
from app.routers import docs as docs_routes
from app.routers import metrics as metrics_routes
from app.routers import plugins as plugin_routes
from app.runtimes.isolation import prepare_server_state, runs_share_server_user
from app.security import configure_hash_pool
from app.services import telemetry
from app.services.logs import LogUsage
from app.services.principal_cache import PrincipalCache
from app.services.run_tokens import RunClock
from app.services.users import ensure_admin

TAGS = [
    {"name": "users", "description": "Log in, tokens and users"},
    {"name": "projects", "description": "Projects (seed 000)"},
    {"name": "experiments", "description": "Experiments: runs, statuses, metrics, logs"},
    {"name": "jobs", "description": "Jobs"},
    {"name": "builds", "description": "Builds (recorded; the local runtime builds no image)"},
    {"name": "groups", "description": "Experiment groups: hyperparameter sweeps"},
    {"name": "code", "description": "A project's uploaded code (repo upload and download)"},
    {"name": "plugins", "description": "Tensorboards and notebooks"},
    {"name": "bookmarks", "description": "A user's bookmarks"},
    {"name": "events", "description": "Change feed: statuses, metrics, creates, deletes"},
    {"name": "cluster", "description": "Cluster and nodes, as v0 clients ask for them"},
    {"name": "versions", "description": "Versions and log handler, as v0 clients ask for them"},
    {"name": "health", "description": "Liveness and readiness"},
    {"name": "dashboard", "description": "Downsampled series and sweep points for charts"},
]


def _lifespan(settings: Settings) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before anything serves: a run user that cannot be used is a clear start-up error.
        app.state.run_user = prepare_server_state(settings)
        app.state.runs_share_server_user = runs_share_server_user(settings)
        engine = make_engine(settings)
        principals = PrincipalCache(settings.auth_cache_seconds)
        maker = make_sessionmaker(engine, principals)
        app.state.engine = engine
        app.state.sessionmaker = maker
        app.state.read_sessionmaker = make_read_sessionmaker(engine, principals)
        if settings.admin_username and settings.admin_password:
            async with session_scope(maker) as session:
                await ensure_admin(
                    session, username=settings.admin_username, password=settings.admin_password
                )
        hooks = list(getattr(app.state, "startup_hooks", []))
        stops = []
        for hook in hooks:
            stop = await hook(app)
            if stop is not None:
                stops.append(stop)
        try:
            yield
        finally:
            for stop in reversed(stops):
                await stop()
            await engine.dispose()

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="plx",
        version="0.1.0",
        description="Experiment tracking and hyperparameter sweeps, speaking the Polyaxon v0 API.",
        openapi_tags=TAGS,
        lifespan=_lifespan(settings),
        redirect_slashes=False,
        # Every route refuses run tokens unless it opted in (app.deps.run_token_route).
        dependencies=[Depends(guard_run_tokens)],
        # Served by docs_routes from packaged assets (no CDN).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.run_clock = RunClock(settings.auth_cache_seconds, settings.run_token_grace_seconds)
    configure_hash_pool(settings.password_hash_workers)
    app.state.startup_hooks = []
    app.state.reconciler = None
    app.state.runtime = None
    # Ordered reconciler steps; each module appends its own (runs, groups, plugins).
    app.state.reconciler_steps = [*RUN_STEPS]
    app.state.reconciler_steps.append(reconcile_groups)
    app.state.reconciler_steps.append(reconcile_plugins)
    if settings.reconciler_enabled:
        app.state.startup_hooks.append(start_reconciler)
    app.state.startup_hooks.append(plugin_proxy.http_client_hook)
    add_exception_handlers(app)
    docs_routes.add_docs_routes(app)
    app.include_router(health.router)
    app.include_router(metrics_routes.router)
    app.include_router(users.router)
    app.include_router(versions.router)
    app.include_router(cluster.router)
    app.include_router(bookmarks.router)
    app.include_router(admin_users.router)
    app.include_router(groups.router)
    app.include_router(code_routes.router)
    app.include_router(plugin_routes.router)
    app.include_router(plugin_proxy.router)
    app.include_router(experiments.router)
    app.include_router(jobs.router)
    app.include_router(builds.router)
    app.include_router(events.router)
    app.include_router(streams.router)
    # Project routes last: `/api/v1/{username}` would otherwise shadow fixed paths.
    app.include_router(projects.router)
    # The dashboard's pages and assets (outside /api).
    app.include_router(dashboard.router)
    app.include_router(ui.router)
    app.state.request_metrics = RequestMetrics()
    app.state.metrics_gauges = telemetry.GaugeCache()
    app.state.log_usage = LogUsage()
    limits = Limits(
        per_minute=settings.rate_limit_per_minute,
        max_body_bytes=settings.max_body_bytes,
        login_failures_per_minute=settings.login_failures_per_minute,
        ws_handshakes_per_minute=settings.ws_handshakes_per_minute,
        max_streams_per_user=settings.max_streams_per_user,
        metrics=app.state.request_metrics,
    )
    app.state.request_limits = limits
    app.add_middleware(AllowedRefsMiddleware, settings=settings)
    # Trailing slashes, request ids, callers, limits, metrics and access log: one middleware.
    app.add_middleware(RequestMiddleware, metrics=app.state.request_metrics, limits=limits)
    # Outermost: the headers reach every answer, 413/429 from the limits included.
    app.add_middleware(SecurityHeadersMiddleware)
    return app
