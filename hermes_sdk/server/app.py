"""The scheduler service's aiohttp application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from hermes_sdk.server import admin, app_classes, control, exposure, leases, metrics, openapi, ui
from hermes_sdk.server.auth import ACCESS, Access, Keyring, auth_middleware
from hermes_sdk.server.config import ServerConfig
from hermes_sdk.server.metrics import METRICS, ServerMetrics
from hermes_sdk.server.middlewares import error_middleware
from hermes_sdk.server.otlp_routes import setup_otlp
from hermes_sdk.server.ratelimit import RATE_LIMITER, TenantRateLimiter, rate_limit_middleware
from hermes_sdk.server.scheduler import SCHEDULER, Scheduler
from hermes_sdk.store import open_store

log = logging.getLogger("hermes_sdk.server")

CONFIG = web.AppKey("hermes_config", ServerConfig)

health_routes = web.RouteTableDef()


@health_routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the server answers and its store is open."""
    sched = request.app[SCHEDULER]
    auth = request.app[ACCESS].mode  # api_keys, none, or insecure_no_auth (--insecure-no-auth)
    body = {
        "status": "ok",
        "policy": sched.policy.name,
        "backends": len(sched.queues),
        "auth": auth,
    }
    if auth == "insecure_no_auth":
        body["warning"] = "serving without API keys on a non-loopback address (--insecure-no-auth)"
    return web.json_response(body)


async def _scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    sched = app[SCHEDULER]
    task = asyncio.create_task(_housekeeping(sched))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    sched.close()


async def _housekeeping(sched: Scheduler) -> None:
    """Reclaim expired leases and pull other replicas' paths, forever."""
    interval_s = sched.config.sync_interval_s
    while True:
        await asyncio.sleep(interval_s)
        try:
            sched.reclaim_expired()
            sched.sync.pull()
            sched.forget_idle_runs()
        except Exception:
            log.exception("scheduler housekeeping failed")


def create_app(config: ServerConfig, *, clock: Callable[[], float] = time.time) -> web.Application:
    """Build the scheduler app: control API, admission, metrics, OpenAPI (and the gateway).

    The store is opened here (so a bad ``store_url`` fails fast and the gateway can reach
    ``app[SCHEDULER]`` while it is set up) and closed by the app's cleanup. ``clock`` is the
    scheduler's (unix seconds: run arrivals, ranks, completion times); tests pass a fake one.
    """
    store = open_store(config.store_url)
    metrics_ = ServerMetrics()
    try:
        sched = Scheduler(config, store, metrics_, clock=clock)
    except BaseException:
        store.close()
        raise
    app = web.Application(
        middlewares=[error_middleware, auth_middleware, rate_limit_middleware],
        client_max_size=config.max_body_bytes,
    )
    app[CONFIG] = config
    app[ACCESS] = Access(
        Keyring(config.api_keys, config.key_salt),
        metrics_public=exposure.metrics_public(config),
        insecure=exposure.insecure_mode(config),
    )
    app[METRICS] = metrics_
    app[SCHEDULER] = sched
    limiter = TenantRateLimiter(config.rate_limit_rps or 1.0, config.rate_limit_burst)
    limiter.enabled = config.rate_limit_rps is not None  # a reload may turn it on or off
    app[RATE_LIMITER] = limiter
    app.cleanup_ctx.append(_scheduler_ctx)
    app.cleanup_ctx.append(metrics_.loop_health.context)  # gc pauses and loop lag on /metrics
    for table in (health_routes, control.routes, leases.routes, metrics.routes, openapi.routes):
        app.add_routes(table)
    app.add_routes(app_classes.routes)  # per-app completion times (dashboard, admin)
    ui.setup_ui(app)
    admin.setup_admin(app, config)
    setup_otlp(app)  # POST /v1/traces: learn runs from OpenTelemetry traces
    if config.prewarm_backends:
        from hermes_sdk.server.prewarm_routes import PrewarmServerConfig, setup_prewarm

        setup_prewarm(
            app,
            PrewarmServerConfig(
                backends=config.prewarm_backends, webhooks=dict(config.prewarm_webhooks)
            ),
        )
    if config.upstreams:
        from hermes_sdk.server.gateway import setup_gateway

        setup_gateway(app, config)
    return app
