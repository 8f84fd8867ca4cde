"""The read-only dashboard: ``GET /ui`` (static page) and its tenant-scoped JSON/SVG endpoints.

The page and its two assets (``/ui``, ``/ui/app.js``, ``/ui/app.css``, shipped in
``hermes_sdk/server/static``) carry no data and are public. Every data call the page makes goes
to ``/v1/ui/...`` with the tenant's API key as ``Authorization: Bearer`` (the key is typed once,
or passed once as ``/ui?key=...``, and kept in the tab's ``sessionStorage``), so the dashboard
shows exactly what the key's tenant may read through the rest of ``/v1``:

- ``GET /v1/ui/state``: the policy in force, each backend's slots in flight and requests waiting
  (shared backends: counts over all tenants, plus how many of the waiting are this tenant's),
  prewarm state per backend (or ``null`` when prewarm is off), the tenant's apps with their
  graph sizes, its running apps ordered by predicted remaining demand (seconds), and its
  paused runs (waiting for a person or an event: no rank, in no queue), longest pause first.
- ``GET /v1/ui/apps/{app}/graph.svg``: the app's PDGraph drawn server-side
  (:func:`hermes_sdk.graph.svg.graph_to_svg`).
- ``GET /v1/ui/app_classes``: each of the tenant's apps' recently ended runs, with their mean,
  P95 and max completion time (served by :mod:`hermes_sdk.server.app_classes`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Final

import numpy as np
from aiohttp import web

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.svg import graph_to_svg
from hermes_sdk.policy.base import AppState
from hermes_sdk.server.auth import ACCESS, TENANT
from hermes_sdk.server.middlewares import ApiError
from hermes_sdk.server.paused import PausedView
from hermes_sdk.server.scheduler import SCHEDULER, RunView, Scheduler

STATIC_FILES: Final = {
    "/ui": ("ui.html", "text/html"),
    "/ui/app.js": ("app.js", "text/javascript"),
    "/ui/app.css": ("app.css", "text/css"),
}
"""Public paths of the page and its assets -> (file in ``static/``, content type)."""
TOP_RUNS: Final = 15
"""Running apps listed, most remaining demand first."""
MAX_RUNS_PREDICTED: Final = 64
"""At most this many of a tenant's running apps (latest events first) get a prediction per poll."""
SAMPLES: Final = 256
"""Monte Carlo samples of remaining demand per run and poll."""
STATE_TTL_S: Final = 1.0
"""A tenant's state is recomputed at most this often, however many tabs poll it."""
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

INSECURE_BANNER: Final = (
    b'<p id="insecure" class="error" role="alert"><strong>Insecure:</strong> this scheduler '
    b"was started with <code>--insecure-no-auth</code> on a non-loopback address: anyone who "
    b"can reach it can read every graph, post events and hold every slot. Add "
    b"<code>[[api_keys]]</code> to hermes.toml.</p>"
)
"""Shown at the top of ``/ui`` while the server runs exposed without keys."""

routes = web.RouteTableDef()
log = logging.getLogger("hermes_sdk.server")


@cache
def _asset(name: str) -> bytes:
    return resources.files("hermes_sdk.server").joinpath("static", name).read_bytes()


async def _static(request: web.Request) -> web.Response:
    name, content_type = STATIC_FILES[request.path]
    body = _asset(name)
    if request.path == "/ui" and request.app[ACCESS].insecure:
        body = body.replace(b"<body>", b"<body>\n" + INSECURE_BANNER, 1)
    return web.Response(
        body=body, content_type=content_type, charset="utf-8", headers=SECURITY_HEADERS
    )


def _tenant(request: web.Request) -> str:
    tenant = request.get(TENANT)
    if not isinstance(tenant, str):  # a public path never reaches the /v1 handlers
        raise ApiError(401, "unauthorized", "an API key is required")
    return tenant


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


@dataclass(frozen=True, slots=True)
class _RunView:
    """A running app as the dashboard lists it (a snapshot taken on the event loop)."""

    run_id: str
    app: str
    node: str
    state: AppState
    remaining_p50_s: float | None = None
    remaining_p95_s: float | None = None


def _snapshot(runs: tuple[RunView, ...]) -> list[_RunView]:
    recent = sorted(runs, key=lambda r: r.last_event_s, reverse=True)[:MAX_RUNS_PREDICTED]
    return [_RunView(r.run_id, r.app, r.node, r.state) for r in recent]


def _predict(registry: GraphRegistry, tenant: str, views: list[_RunView]) -> list[_RunView]:
    """Remaining-demand quantiles of each run (Monte Carlo; runs off the event loop)."""
    out = []
    for v in views:
        try:
            samples = registry.remaining_demand(v.app, v.state.state, tenant=tenant, n=SAMPLES)
        except Exception:  # one odd run must not blank the dashboard
            log.exception("dashboard: no prediction for run %s of %s", v.run_id, v.app)
            samples = np.empty(0)
        if len(samples):
            p50, p95 = (float(x) for x in np.quantile(samples, [0.5, 0.95]))
            v = replace(v, remaining_p50_s=p50, remaining_p95_s=p95)
        out.append(v)
    out.sort(key=lambda v: -1.0 if v.remaining_p50_s is None else v.remaining_p50_s, reverse=True)
    return out[:TOP_RUNS]


def _run_row(sched: Scheduler, v: _RunView, now_s: float) -> dict[str, object]:
    try:
        rank_s: float | None = float(sched.policy.rank(v.state, now_s))
    except Exception:  # the scheduler falls back to FCFS for this run; so does the view
        rank_s = None
    deadline_s = v.state.deadline_s
    return {
        "run_id": v.run_id,
        "app": v.app,
        "node": v.node,
        "running": bool(v.state.state.running),
        "attained_s": v.state.attained_s,
        "remaining_p50_s": v.remaining_p50_s,
        "remaining_p95_s": v.remaining_p95_s,
        "rank_s": _finite(rank_s),
        "deadline_in_s": None if deadline_s is None else round(deadline_s - now_s, 3),
    }


def _backends(sched: Scheduler, tenant: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name in sorted(sched.queues):
        q = sched.queues[name]
        waiting = q.waiting()
        yours = sum(1 for _, _, key in waiting if isinstance(key, tuple) and key[0] == tenant)
        out.append(
            {
                "backend": name,
                "max_inflight": q.max_inflight,
                "inflight": q.inflight,
                "waiting": len(waiting),
                "waiting_yours": yours,
                "lease_s": q.lease_s,
            }
        )
    return out


def _prewarm(app: web.Application) -> dict[str, object] | None:
    from hermes_sdk.server.prewarm_routes import PREWARM

    if PREWARM not in app:
        return None
    runtime = app[PREWARM]
    planner = runtime.planner
    now_s = runtime.clock()
    backends = []
    for backend in planner.backends:
        b = planner.ledger.get(backend)
        backends.append(
            {
                "backend": backend,
                "status": b.status,
                "inflight": b.inflight,
                "cold_start_s": _finite(planner.cold_start_s(backend)),
                "keep_alive_s": _finite(planner.keep_alive_s(backend)),
                "need_probability": _finite(planner.need_probability(backend, now_s)),
            }
        )
    return {"threshold": planner.config.threshold, "backends": backends}


def _paused_row(v: PausedView) -> dict[str, object]:
    return {
        "run_id": v.run_id,
        "app": v.app,
        "node": v.node,
        "attained_s": v.attained_s,
        "paused_for_s": round(v.paused_for_s, 3),
        "paused_s": round(v.paused_s + v.paused_for_s, 3),
    }


def _apps(
    sched: Scheduler, tenant: str, active: dict[str, int], paused: dict[str, int]
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name in sorted(set(sched.registry.apps(tenant)) | set(active) | set(paused)):
        g = sched.registry.get(name, tenant)
        out.append(
            {
                "app": name,
                "runs": g.runs if g is not None else 0,
                "version": g.version if g is not None else 0,
                "nodes": len(g.nodes) if g is not None else 0,
                "active_runs": active.get(name, 0),
                "paused_runs": paused.get(name, 0),
            }
        )
    return out


async def ui_state(app: web.Application, tenant: str) -> dict[str, object]:
    """Everything the dashboard shows for ``tenant`` (see the module docstring).

    Run states are snapshotted on the event loop; the Monte Carlo predictions run in a worker
    thread (the registry is thread-safe), and only the listed runs are ranked by the policy.
    """
    sched = app[SCHEDULER]
    sched.sync.pull()
    now_s = sched.now_s()
    runs = sched.tracked_runs(tenant, now_s=now_s)
    active: dict[str, int] = {}
    for run in runs:
        active[run.app] = active.get(run.app, 0) + 1
    paused_views = sorted(
        sched.paused_runs(tenant, now_s=now_s), key=lambda v: v.paused_for_s, reverse=True
    )
    paused: dict[str, int] = {}
    for pv in paused_views:
        paused[pv.app] = paused.get(pv.app, 0) + 1
    views = _snapshot(runs)
    top = await asyncio.to_thread(_predict, sched.registry, tenant, views) if views else []
    return {
        "tenant": tenant,
        "policy": sched.policy.name,
        "now_s": now_s,
        "backends": _backends(sched, tenant),
        "prewarm": _prewarm(app),
        "runs": {
            "active": len(runs),
            "top": [_run_row(sched, v, now_s) for v in top],
            "paused": [_paused_row(v) for v in paused_views[:TOP_RUNS]],
            "paused_count": len(paused_views),
        },
        "apps": _apps(sched, tenant, active, paused),
    }


@dataclass(slots=True)
class _StateCache:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    states: dict[str, tuple[float, dict[str, object]]] = field(default_factory=dict)


UI_CACHE: Final = web.AppKey("hermes_ui_cache", _StateCache)


@routes.get("/v1/ui/state")
async def state_endpoint(request: web.Request) -> web.Response:
    """The dashboard's data for the key's tenant (polled every second by ``/ui``)."""
    tenant = _tenant(request)
    cache_ = request.app[UI_CACHE]
    async with cache_.lock:  # many tabs polling: one computation per tenant and STATE_TTL_S
        hit = cache_.states.get(tenant)
        if hit is None or time.monotonic() - hit[0] >= STATE_TTL_S:
            hit = cache_.states[tenant] = (time.monotonic(), await ui_state(request.app, tenant))
    return web.json_response(hit[1], headers={"Cache-Control": "no-store"})


@routes.get("/v1/ui/apps/{app}/graph.svg")
async def graph_svg(request: web.Request) -> web.Response:
    """The tenant's app's PDGraph as SVG; 404 when the tenant has no such app."""
    name = request.match_info["app"]
    sched = request.app[SCHEDULER]
    graph = sched.registry.get(name, _tenant(request))
    if graph is None:
        raise ApiError(404, "unknown_app", f"no graph for app {name!r} for this tenant")
    svg = graph_to_svg(graph.to_dict(include_samples=False))
    return web.Response(
        text=svg,
        content_type="image/svg+xml",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def setup_ui(app: web.Application) -> None:
    """Add the dashboard page, its assets and its ``/v1/ui`` endpoints to a scheduler app."""
    app[UI_CACHE] = _StateCache()
    for path in STATIC_FILES:
        app.router.add_get(path, _static)
    app.add_routes(routes)
