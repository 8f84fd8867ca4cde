"""Prewarm in the scheduler service: ``setup_prewarm(app, config)`` and ``/v1/prewarm`` routes.

The planner forecasts from the scheduler's tracked runs and learned graphs; a poller copies run
states and backend admissions (a granted lease = a request, inflight back to 0 = done) into it
every ``poll_interval_s``, and a :class:`PrewarmRuntime` delivers signals to each backend's
webhook. Backends (or their controllers) report readiness with ``POST /v1/prewarm/report`` so
the cold-start time is learned. ``GET /v1/prewarm`` shows state, forecasts and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily

from hermes_sdk.errors import ConfigError, InvalidRequest
from hermes_sdk.prewarm.adapters import PrewarmAdapter
from hermes_sdk.prewarm.planner import PrewarmConfig, PrewarmPlanner, PrewarmSignal
from hermes_sdk.prewarm.runtime import PrewarmRuntime
from hermes_sdk.prewarm.webhook import WebhookAdapter
from hermes_sdk.server.metrics import METRICS
from hermes_sdk.server.scheduler import SCHEDULER, Scheduler
from hermes_sdk.server.wire import read_message
from hermes_sdk.wire.messages import PrewarmReport


@dataclass(frozen=True, slots=True)
class PrewarmServerConfig:
    """Which backends have cold starts, where their signals go, and the planner's knobs."""

    backends: tuple[str, ...]
    webhooks: Mapping[str, str] = field(default_factory=dict)
    """backend -> URL receiving its prewarm/release POSTs."""
    planner: PrewarmConfig = field(default_factory=lambda: PrewarmConfig(assume_ready=True))
    """With webhooks, readiness is reported to ``/v1/prewarm/report`` or assumed after C."""
    poll_interval_s: float = 0.25

    def __post_init__(self) -> None:
        unknown = set(self.webhooks) - set(self.backends)
        if unknown:
            raise ConfigError(f"webhooks for unknown prewarm backends: {sorted(unknown)}")
        if not (self.poll_interval_s > 0 and math.isfinite(self.poll_interval_s)):
            raise ConfigError("poll_interval_s must be a positive number of seconds")


PREWARM: Final = web.AppKey("hermes_prewarm", PrewarmRuntime)
MAX_WAIT_S: Final = 30.0
"""Longest long-poll a signal subscriber may ask for."""
routes = web.RouteTableDef()


def _sync(sched: Scheduler, runtime: PrewarmRuntime, seen: set[str], busy: dict[str, int]) -> None:
    """Copy run states and backend admissions from the scheduler into the planner."""
    live: set[str] = set()
    for run in sched.tracked_runs():
        key = f"{run.tenant}/{run.run_id}"
        live.add(key)
        runtime.run_state(key, run.app, run.position, tenant=run.tenant)
    for key in seen - live:
        runtime.run_end(key)
    seen.clear()
    seen.update(live)
    for backend in runtime.planner.backends:
        queue = sched.queues.get(backend)
        if queue is None:
            continue
        inflight, before = queue.inflight, busy.get(backend, 0)
        for _ in range(max(0, inflight - before)):
            runtime.request(backend)
        for _ in range(max(0, before - inflight)):
            runtime.done(backend)
        busy[backend] = inflight


def setup_prewarm(app: web.Application, config: PrewarmServerConfig) -> None:
    """Add the prewarm planner, its poller and the ``/v1/prewarm`` routes to a scheduler app."""
    sched = app[SCHEDULER]
    planner = PrewarmPlanner(sched.registry.get, config.backends, config.planner)
    adapters: list[PrewarmAdapter] = [
        _Only(backend, WebhookAdapter(url)) for backend, url in config.webhooks.items()
    ]
    runtime = PrewarmRuntime(planner, adapters)
    app[PREWARM] = runtime

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        runtime.start()
        seen: set[str] = set()
        busy: dict[str, int] = {}

        async def poll() -> None:
            while True:
                _sync(sched, runtime, seen, busy)
                await asyncio.sleep(config.poll_interval_s)

        poller = asyncio.get_running_loop().create_task(poll(), name="prewarm-poll")
        yield
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await runtime.aclose()

    app.cleanup_ctx.append(lifetime)
    app.add_routes(routes)
    if METRICS in app:
        app[METRICS].registry.register(_PrewarmCollector(runtime))


_HELP: Final = {
    "requests": "Requests that reached a prewarm-managed backend",
    "cold_start_wait_s": "Seconds apps waited for backend start-ups",
    "warm_idle_s": "Seconds a backend was up with nothing in flight",
    "prewarms": "Prewarm signals sent",
    "releases": "Backends released (scaled to zero)",
    "prewarm_hits": "Requests served by an instance a prewarm started",
    "misses": "Requests that found the backend cold",
    "wasted_warms": "Prewarmed instances released without serving a request",
}


class _PrewarmCollector:
    """Prometheus collector exposing the prewarm metrics per backend on ``/metrics``."""

    def __init__(self, runtime: PrewarmRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        per_backend = self.runtime.metrics()
        for name, help_text in _HELP.items():
            family = GaugeMetricFamily(f"hermes_prewarm_{name}", help_text, labels=["backend"])
            for backend, m in per_backend.items():
                family.add_metric([backend], float(getattr(m, name)))
            yield family


@dataclass(slots=True)
class _Only:
    """Route one backend's signals to an adapter (each webhook serves one backend)."""

    backend: str
    adapter: PrewarmAdapter

    async def prewarm(
        self, backend: str, *, reason: str = "", eta_s: float | None = None, key: str = ""
    ) -> None:
        if backend == self.backend:
            await self.adapter.prewarm(backend, reason=reason, eta_s=eta_s, key=key)

    async def release(self, backend: str, *, key: str = "") -> None:
        if backend == self.backend:
            await self.adapter.release(backend, key=key)

    async def aclose(self) -> None:
        await self.adapter.aclose()


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


@routes.get("/v1/prewarm")
async def prewarm_state(request: web.Request) -> web.Response:
    """Per backend: warm state, learned cold start and keep-alive, P(need), metrics."""
    runtime = request.app[PREWARM]
    planner = runtime.planner
    now_s = runtime.clock()
    out: dict[str, object] = {}
    for backend in planner.backends:
        b = planner.ledger.get(backend)
        out[backend] = {
            "status": b.status,
            "inflight": b.inflight,
            "cold_start_s": planner.cold_start_s(backend),
            "keep_alive_s": _finite(planner.keep_alive_s(backend)),
            "need_probability": planner.need_probability(backend, now_s),
            "metrics": b.metrics(now_s).as_dict(),
        }
    signals = [_signal_json(s) for s in runtime.signals[-50:]]
    return web.json_response(
        {"threshold": planner.config.threshold, "backends": out, "signals": signals}
    )


def _signal_json(s: PrewarmSignal) -> dict[str, object]:
    eta = None if s.eta_s is None else _finite(s.eta_s)
    return {"action": s.action, "backend": s.backend, "reason": s.reason, "key": s.key,
            "eta_s": eta, "probability": s.probability}  # fmt: skip


@routes.get("/v1/prewarm/signals")
async def prewarm_signals(request: web.Request) -> web.Response:
    """Long-poll for signals: ``?after=<seq>&wait_s=<seconds, <= 30>`` -> ``{"seq", "signals"}``."""
    runtime = request.app[PREWARM]
    try:
        after = int(request.query.get("after", "0"))
        wait_s = float(request.query.get("wait_s", "0"))
    except ValueError:
        raise InvalidRequest("after must be an integer and wait_s a number") from None
    if after < 0 or not 0.0 <= wait_s <= MAX_WAIT_S:
        raise InvalidRequest(f"need after >= 0 and 0 <= wait_s <= {MAX_WAIT_S}")
    seq, signals = await runtime.signals_after(after, wait_s)
    return web.json_response({"seq": seq, "signals": [_signal_json(s) for s in signals]})


@routes.post("/v1/prewarm/report")
async def prewarm_report(request: web.Request) -> web.Response:
    """A backend reports ``{"backend", "event": "ready"|"released", "startup_s"?}``."""
    runtime = request.app[PREWARM]
    body = await read_message(request, PrewarmReport)
    if body.backend not in runtime.planner.backends:
        raise InvalidRequest(f"backend: unknown prewarm backend {body.backend!r}")
    if body.event == "ready":
        runtime.ready(body.backend, body.startup_s)
    else:
        runtime.planner.ledger.released(body.backend, runtime.clock())
    return web.json_response({"ok": True})
