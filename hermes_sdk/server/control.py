"""Control API routes for runs, events, hints and graphs (``/v1``), all scoped to the tenant.

A tenant only ever addresses its own namespace: another tenant's run or app is simply not
there (404), so nothing can be read or changed across tenants.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import cast

from aiohttp import web

from hermes_sdk.server.auth import TENANT
from hermes_sdk.server.middlewares import ApiError
from hermes_sdk.server.scheduler import SCHEDULER, UnknownRun
from hermes_sdk.server.wire import RunEnd, RunStart, decode_batch, own_path, read_message
from hermes_sdk.wire.messages import EndRun, StartRun

routes = web.RouteTableDef()

GRAPH_FORMATS = {
    "json": "application/json",
    "dot": "text/vnd.graphviz",
    "mermaid": "text/plain",
}


def _tenant(request: web.Request) -> str:
    return cast(str, request[TENANT])


def _no_run(run_id: str) -> ApiError:
    return ApiError(404, "unknown_run", f"no run {run_id!r} for this tenant")


@routes.post("/v1/runs")
async def open_run(request: web.Request) -> web.Response:
    """Start a run: ``{"app", "run_id"?, "deadline_s"?}`` -> 201 ``{"run_id", "app", ...}``."""
    body = await read_message(request, StartRun)
    app, deadline_s = body.app, body.deadline_s
    run_id = body.run_id or uuid.uuid4().hex
    sched = request.app[SCHEDULER]
    tenant = _tenant(request)
    existing = sched.run(tenant, run_id)
    if existing is not None and existing.app != app:
        raise ApiError(409, "conflict", f"run {run_id!r} already exists for app {existing.app!r}")
    sched.apply(tenant, [RunStart(run_id=run_id, app=app, deadline_s=deadline_s)])
    return web.json_response({"run_id": run_id, "app": app, "deadline_s": deadline_s}, status=201)


@routes.get("/v1/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    """The tracked state of one of the tenant's runs."""
    run_id = request.match_info["run_id"]
    sched = request.app[SCHEDULER]
    run = sched.run(_tenant(request), run_id)
    if run is None:
        raise _no_run(run_id)
    state = run.run_state(sched.now_s())
    return web.json_response(
        {
            "run_id": run.run_id,
            "app": run.app,
            "deadline_s": run.deadline_s,
            "attained_s": run.attained_s,
            "node": state.node,
            "visits": dict(state.visits),
            "running": state.running,
            "elapsed_s": state.elapsed_s,
        }
    )


@routes.post("/v1/runs/{run_id}/end")
async def close_run(request: web.Request) -> web.Response:
    """End a run, optionally with its completed ``path`` (stored durably before the answer)."""
    run_id = request.match_info["run_id"]
    body = await read_message(request, EndRun, allow_empty=True)
    sched = request.app[SCHEDULER]
    tenant = _tenant(request)
    run = sched.run(tenant, run_id)
    if run is None:
        raise _no_run(run_id)
    failed = body.failed
    path = None
    if body.path is not None:
        path = own_path(body.path, tenant=tenant, run_id=run_id)
        if path.app != run.app:
            raise ApiError(400, "invalid_request", f"path.app must be {run.app!r}")
    await sched.apply_async(tenant, [RunEnd(run_id=run_id, failed=failed, path=path)])
    return web.json_response({"run_id": run_id, "ended": True, "stored": path is not None})


@routes.post("/v1/events")
async def post_events(request: web.Request) -> web.Response:
    """Apply a batch of wire events; answers after any run_end paths are durably stored."""
    tenant = _tenant(request)
    events, dropped = decode_batch(await request.read(), tenant)
    accepted, rejected = await request.app[SCHEDULER].apply_async(tenant, events, dropped)
    return web.json_response({"accepted": accepted, "rejected": rejected})


@routes.get("/v1/runs/{run_id}/hints")
async def run_hints(request: web.Request) -> web.Response:
    """The run's server-side rank and remaining-demand prediction."""
    run_id = request.match_info["run_id"]
    try:
        hints = request.app[SCHEDULER].hints(_tenant(request), run_id)
    except UnknownRun:
        raise _no_run(run_id) from None
    return web.json_response(asdict(hints))


@routes.get("/v1/apps")
async def list_apps(request: web.Request) -> web.Response:
    """Apps of this tenant with a learned graph."""
    sched = request.app[SCHEDULER]
    sched.sync.pull()
    tenant = _tenant(request)
    apps = []
    for name in sorted(sched.registry.apps(tenant)):
        g = sched.registry.get(name, tenant)
        apps.append({"app": name, "runs": g.runs if g is not None else 0})
    return web.json_response({"apps": apps})


@routes.get("/v1/apps/{app}/graph")
async def app_graph(request: web.Request) -> web.Response:
    """The app's PDGraph as ``format=json`` (default), ``dot`` or ``mermaid``."""
    app = request.match_info["app"]
    fmt = request.query.get("format", "json")
    if fmt not in GRAPH_FORMATS:
        raise ApiError(400, "invalid_request", f"format must be one of {sorted(GRAPH_FORMATS)}")
    sched = request.app[SCHEDULER]
    sched.sync.pull()
    graph = sched.registry.get(app, _tenant(request))
    if graph is None:
        raise ApiError(404, "unknown_app", f"no graph for app {app!r} for this tenant")
    if fmt == "json":
        text = graph.to_json()
    elif fmt == "dot":
        text = graph.to_dot()
    else:
        text = graph.to_mermaid()
    return web.Response(text=text, content_type=GRAPH_FORMATS[fmt])
