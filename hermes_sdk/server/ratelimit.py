"""Per-tenant request rate limit: a token bucket per tenant, 429 JSON with ``Retry-After``.

Off by default (``ServerConfig.rate_limit_rps`` None). When on, each tenant may burst
``rate_limit_burst`` requests and then ``rate_limit_rps`` requests per second; public paths
(health, metrics, OpenAPI) are never limited. Buckets live in this process only: with several
replicas each enforces its own share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web

from hermes_sdk.server.auth import TENANT
from hermes_sdk.server.middlewares import Handler, json_error

MAX_TENANT_BUCKETS: Final = 100_000
"""Buckets kept at most; the oldest-touched are dropped beyond this (they refill anyway)."""


class TenantRateLimiter:
    """Token buckets keyed by tenant: ``rate_rps`` tokens per second, at most ``burst``."""

    def __init__(
        self, rate_rps: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not math.isfinite(rate_rps) or rate_rps <= 0 or burst < 1:
            raise ValueError("rate_rps must be > 0 and burst >= 1")
        self.rate_rps = rate_rps
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        """tenant -> (tokens, monotonic seconds of the last update)."""
        self.limited = 0
        self.enabled = True
        """False: every request passes (a reload removed ``rate_limit_rps``)."""

    def reconfigure(self, rate_rps: float, burst: int) -> None:
        """New rate and burst from now on (a reload); each bucket keeps at most ``burst``."""
        if not math.isfinite(rate_rps) or rate_rps <= 0 or burst < 1:
            raise ValueError("rate_rps must be > 0 and burst >= 1")
        self.rate_rps, self.burst = rate_rps, burst
        for tenant, (tokens, last) in self._buckets.items():
            self._buckets[tenant] = (min(float(burst), tokens), last)

    def take(self, tenant: str) -> float:
        """Take one token for ``tenant``: 0.0 if allowed, else seconds until a token is there."""
        now = self._clock()
        tokens, last = self._buckets.pop(tenant, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate_rps)
        if tokens >= 1.0:
            self._buckets[tenant] = (tokens - 1.0, now)
            wait_s = 0.0
        else:
            self._buckets[tenant] = (tokens, now)
            self.limited += 1
            wait_s = (1.0 - tokens) / self.rate_rps
        if len(self._buckets) > MAX_TENANT_BUCKETS:  # dicts keep insertion order: oldest first
            del self._buckets[next(iter(self._buckets))]
        return wait_s


RATE_LIMITER: Final = web.AppKey("hermes_rate_limiter", TenantRateLimiter)


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """429 ``rate_limited`` (with ``Retry-After``) once the request's tenant is over its rate."""
    limiter = request.app.get(RATE_LIMITER)
    tenant = request.get(TENANT)
    if limiter is None or not limiter.enabled or not isinstance(tenant, str):
        return await handler(request)
    wait_s = limiter.take(tenant)
    if wait_s > 0.0:
        return json_error(
            429,
            "rate_limited",
            f"tenant over its rate limit of {limiter.rate_rps:g} requests/s",
            {"Retry-After": str(max(1, math.ceil(wait_s)))},
            {"retry_after_s": round(wait_s, 3)},
        )
    return await handler(request)
