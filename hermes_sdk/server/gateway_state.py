"""The gateway's shared state: the upstream session, model routing and the record of calls.

``Gateway`` owns the one client session to every upstream, learns which upstream serves which
model, ranks runs known only from hint headers, and reports each forwarded call as a unit of its
run (with Prometheus counters and a bounded record of recent calls).
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp import web
from prometheus_client import Counter, Histogram

from hermes_sdk.policy.base import AppState
from hermes_sdk.server.config import ServerConfig
from hermes_sdk.server.gateway_requests import RunRef
from hermes_sdk.server.scheduler import Scheduler
from hermes_sdk.server.upstreams import (
    ModelCard,
    UpstreamConfig,
    UpstreamRouter,
    fetch_model_cards,
)

MAX_CALL_RECORDS: Final = 10_000
_REDISCOVER_S: Final = 5.0
_HINT_RANK_TTL_S: Final = 1.0

log = logging.getLogger("hermes_sdk.server.gateway")


@dataclass(frozen=True, slots=True)
class GatewayCall:
    """One forwarded request, as the gateway saw it (seconds, tokens)."""

    upstream: str
    endpoint: str
    model: str
    tenant: str
    app: str | None
    run_id: str | None
    unit: str | None
    priority: int | None
    rank_s: float | None
    status: int
    waited_s: float
    service_s: float
    input_tokens: int | None
    output_tokens: int | None
    failed: bool
    disconnected: bool


class Gateway:
    """Routes, the shared upstream session and the record of recent calls."""

    def __init__(self, config: ServerConfig, scheduler: Scheduler) -> None:
        self.config = config
        self.scheduler = scheduler
        self.router = UpstreamRouter(config.upstreams)
        self.calls: deque[GatewayCall] = deque(maxlen=MAX_CALL_RECORDS)
        self.priority_rejected: set[str] = set()
        """Upstreams that refused a ``priority`` (no priority scheduling): none is sent to them."""
        self._session: aiohttp.ClientSession | None = None
        self._discovered_at_s = -math.inf
        self._hint_ranks: dict[tuple[str, str], tuple[float, float | None, int]] = {}
        """(tenant, app) -> (expires at, rank in seconds, graph version it was computed for)."""
        registry = scheduler.metrics.registry
        self._requests = Counter(
            "hermes_gateway_requests",
            "LLM requests forwarded by the gateway, by final status (499: client left)",
            ["upstream", "status"],
            registry=registry,
        )
        self._tokens = Counter(
            "hermes_gateway_tokens",
            "Tokens reported in upstream usage",
            ["upstream", "kind"],
            registry=registry,
        )
        self._service_s = Histogram(
            "hermes_gateway_upstream_seconds",
            "Seconds from slot grant to the end of the upstream response",
            ["upstream"],
            registry=registry,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The one client session to every upstream (created in the app's cleanup_ctx)."""
        if self._session is None:
            raise RuntimeError("gateway session used outside the app's lifetime")
        return self._session

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: open the upstream session, learn upstream models, close on shutdown."""
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
        )
        await asyncio.gather(*(self.discover(u) for u in self.router.upstreams if not u.models))
        yield
        await self._session.close()

    async def discover(self, upstream: UpstreamConfig) -> list[ModelCard]:
        """Fetch ``upstream``'s model cards and learn them for routing; [] if unreachable."""
        cards = await fetch_model_cards(self.session, upstream)
        self.router.learn(upstream, [str(c["id"]) for c in cards if "id" in c])
        return cards

    async def route(self, model: str) -> UpstreamConfig | None:
        """The upstream for ``model``; on a miss, asks upstreams for their models again (at
        most every ``_REDISCOVER_S``), e.g. when one was down when the gateway started."""
        found = self.router.route(model)
        now_s = time.monotonic()
        if found is None and now_s - self._discovered_at_s > _REDISCOVER_S:
            self._discovered_at_s = now_s
            await asyncio.gather(*(self.discover(u) for u in self.router.upstreams))
            found = self.router.route(model)
        return found

    def hint_rank(
        self, tenant: str, app: str, run_id: str, deadline_s: float | None
    ) -> float | None:
        """Rank of a run known only from headers: the policy's rank of a fresh run of ``app``.

        Without a deadline that rank depends only on the app's graph, so it is cached for
        ``_HINT_RANK_TTL_S`` (a Monte Carlo rank per request would cost more than the proxying)
        while the graph stays the same version (a run just learned changes the rank at once).
        """
        now_s = time.time()
        key = (tenant, app)
        graph = self.scheduler.registry.get(app, tenant)
        version = -1 if graph is None else graph.version
        if deadline_s is None:
            hit = self._hint_ranks.get(key)
            if hit is not None and hit[0] > now_s and hit[2] == version:
                return hit[1]
        deadline = None if deadline_s is None else now_s + deadline_s
        state = AppState(
            app=app, run_id=run_id, arrival_s=now_s, deadline_s=deadline, tenant=tenant
        )
        try:
            rank = float(self.scheduler.policy.rank(state, now_s))
        except Exception:
            log.exception("policy failed to rank a fresh run of %s", app)
            return None
        out = rank if math.isfinite(rank) else None
        if deadline_s is None:
            if len(self._hint_ranks) >= MAX_CALL_RECORDS:
                self._hint_ranks.clear()
            self._hint_ranks[key] = (now_s + _HINT_RANK_TTL_S, out, version)
        return out

    def unit_started(
        self, tenant: str, ref: RunRef, upstream: UpstreamConfig, model: str
    ) -> str | None:
        """Report the call as a unit of its run (if the scheduler tracks the run); its id.

        The unit is nested under the client's running unit of the same name when there is one
        (an instrumented ``@llm`` function calling through the gateway), so it is not counted as
        a second stage; otherwise it is a stage of its own, named by the unit header or model.
        """
        if ref.run_id is None or ref.from_trace:  # a traced call: its span is the unit
            return None
        run = self.scheduler.run(tenant, ref.run_id)
        if run is None:
            return None
        parent = next(
            (uid for uid, u in run.units.items() if u.top_level and u.node == ref.unit), None
        )
        unit_id = "gw-" + secrets.token_hex(8)
        event: dict[str, object] = {
            "type": "unit_start",
            "run_id": ref.run_id,
            "unit_id": unit_id,
            "node": ref.unit or model,
            "kind": "llm",
            "backend": upstream.name,
            "ts": time.time(),
        }
        if parent is not None:
            event["parent_id"] = parent
        return unit_id if self._ingest(tenant, event) else None

    def unit_ended(self, tenant: str, unit_id: str | None, call: GatewayCall) -> None:
        """Keep the call, count it, and close its unit with the tokens from ``usage``."""
        self.calls.append(call)
        status = "499" if call.disconnected else str(call.status)
        self._requests.labels(call.upstream, status).inc()
        self._service_s.labels(call.upstream).observe(call.service_s)
        if call.input_tokens:
            self._tokens.labels(call.upstream, "prompt").inc(call.input_tokens)
        if call.output_tokens:
            self._tokens.labels(call.upstream, "completion").inc(call.output_tokens)
        if unit_id is None or call.run_id is None:
            return
        event: dict[str, object] = {
            "type": "unit_end",
            "run_id": call.run_id,
            "unit_id": unit_id,
            "service_s": call.service_s,
            "failed": call.failed,
            "ts": time.time(),
        }
        if call.input_tokens is not None:
            event["input_tokens"] = call.input_tokens
        if call.output_tokens is not None:
            event["output_tokens"] = call.output_tokens
        self._ingest(tenant, event)

    def _ingest(self, tenant: str, event: dict[str, object]) -> bool:
        try:
            return self.scheduler.ingest(tenant, [event]) == 1
        except Exception:  # recording must never fail the user's call
            log.exception("gateway could not record %s", event.get("type"))
            return False
