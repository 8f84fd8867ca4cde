"""Per-app-class completion times: ``GET /v1/ui/app_classes`` and ``GET /v1/admin/app_classes``.

Both answer an :class:`~hermes_sdk.wire.app_classes.AppClasses` from the scheduler's
:class:`~hermes_sdk.server.completions.CompletionLog`: for each app, its runs that ended in the
window, how many failed, and the completed runs' mean, P95 and max completion time (seconds).
``/v1/ui/app_classes`` is the key's tenant's own apps (the dashboard shows it);
``/v1/admin/app_classes`` (admin key) pools every tenant's runs per app and lists each
tenant's apps too. The optional query parameter ``window_s`` (seconds, 0 < window_s <= a week)
keeps only runs that ended in the last ``window_s`` seconds; anything else answers 400
``invalid_request``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Final

from aiohttp import web

from hermes_sdk.errors import InvalidRequest
from hermes_sdk.server.auth import TENANT
from hermes_sdk.server.completions import CompletionLog, Ended, per_app, per_tenant
from hermes_sdk.server.middlewares import ApiError
from hermes_sdk.server.scheduler import SCHEDULER
from hermes_sdk.wire import encode
from hermes_sdk.wire.app_classes import AppClasses, AppClassStats

MAX_WINDOW_S: Final = 7 * 24 * 3600.0
"""Longest ``window_s`` a query may ask for (a week, in seconds)."""

routes = web.RouteTableDef()


def window_of(values: Sequence[str]) -> float | None:
    """The ``window_s`` query parameter (its ``values``) in seconds, None when absent;
    InvalidRequest if it is repeated, not a number, or outside (0, :data:`MAX_WINDOW_S`]."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest("window_s: given more than once")
    try:
        window_s = float(values[0])
    except ValueError:
        raise InvalidRequest(f"window_s: not a number: {values[0][:64]!r}") from None
    if not (math.isfinite(window_s) and 0.0 < window_s <= MAX_WINDOW_S):
        raise InvalidRequest(f"window_s: must be seconds in (0, {MAX_WINDOW_S:.0f}]")
    return window_s


def _answer(
    request: web.Request,
    log: CompletionLog,
    now_s: float,
    window_s: float | None,
    classes: list[AppClassStats],
    *,
    tenant: str | None = None,
    tenants: dict[str, list[AppClassStats]] | None = None,
) -> web.Response:
    """The :class:`AppClasses` answer: one tenant's (``tenant``) or the admin's (``tenants``)."""
    message = AppClasses(
        policy=request.app[SCHEDULER].policy.name,
        now_s=now_s,
        window_s=window_s,
        runs_kept=log.runs_per_class,
        classes=classes,
        tenant=tenant,
        tenants=tenants,
    )
    return web.Response(
        body=encode(message), content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _window(request: web.Request) -> tuple[CompletionLog, float, float | None, float | None]:
    """(the log, now, window_s, cutoff) for a request."""
    window_s = window_of(request.query.getall("window_s", []))
    sched = request.app[SCHEDULER]
    now_s = sched.now_s()
    return sched.completions, now_s, window_s, None if window_s is None else now_s - window_s


def _pooled_and_per_tenant(
    window: list[Ended],
) -> tuple[list[AppClassStats], dict[str, list[AppClassStats]]]:
    return per_app(window), per_tenant(window)


@routes.get("/v1/ui/app_classes")
async def tenant_app_classes(request: web.Request) -> web.Response:
    """The key's tenant's apps: completed runs, mean and P95 completion time in the window."""
    tenant = request.get(TENANT)
    if not isinstance(tenant, str):
        raise ApiError(401, "unauthorized", "an API key is required")
    log, now_s, window_s, cutoff_s = _window(request)
    window = log.window(cutoff_s, tenant)  # a copy, summarised off the event loop
    classes = await asyncio.to_thread(per_app, window)
    return _answer(request, log, now_s, window_s, classes, tenant=tenant)


@routes.get("/v1/admin/app_classes")
async def admin_app_classes(request: web.Request) -> web.Response:
    """Every tenant's apps (admin key): per app pooled over tenants, and per tenant."""
    log, now_s, window_s, cutoff_s = _window(request)
    window = log.window(cutoff_s)  # a copy, summarised off the event loop
    classes, tenants = await asyncio.to_thread(_pooled_and_per_tenant, window)
    return _answer(request, log, now_s, window_s, classes, tenants=tenants)
