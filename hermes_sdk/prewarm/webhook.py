"""Webhook prewarm adapter: POST each signal as JSON to a URL, retried with backoff.

Body: ``{"action": "prewarm"|"release", "backend", "reason", "eta_s", "key", "ts"}`` with the
same key in an ``Idempotency-Key`` header, so a receiver can drop duplicates of a retried
delivery. 5xx answers, 429 and connection errors or timeouts are retried with exponential backoff
(``backoff_base_s * 2**attempt``, capped at ``backoff_max_s``) up to ``max_attempts`` in total;
other 4xx answers are not retried. Delivery runs in background tasks: callers never wait.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass

import aiohttp

from hermes_sdk.errors import ConfigError

log = logging.getLogger("hermes_sdk.prewarm.webhook")


@dataclass(slots=True)
class WebhookStats:
    """Delivery counters (mutable, owned by the adapter)."""

    delivered: int = 0
    attempts: int = 0
    retries: int = 0
    gave_up: int = 0


class WebhookAdapter:
    """Delivers prewarm/release signals to ``url`` in the background with retries."""

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 5,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 10.0,
        timeout_s: float = 5.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook url must be http(s), got {url!r}")
        if max_attempts < 1 or backoff_base_s < 0 or timeout_s <= 0:
            raise ConfigError("need max_attempts >= 1, backoff_base_s >= 0, timeout_s > 0")
        self.url = url
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.stats = WebhookStats()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"WebhookAdapter({self.url!r})"

    async def prewarm(
        self, backend: str, *, reason: str = "", eta_s: float | None = None, key: str = ""
    ) -> None:
        """Queue a ``prewarm`` POST (returns at once)."""
        eta = eta_s if eta_s is not None and math.isfinite(eta_s) else None
        self._spawn({"action": "prewarm", "backend": backend, "reason": reason, "eta_s": eta}, key)

    async def release(self, backend: str, *, key: str = "") -> None:
        """Queue a ``release`` POST (returns at once)."""
        self._spawn({"action": "release", "backend": backend, "reason": "", "eta_s": None}, key)

    def _spawn(self, body: dict[str, object], key: str) -> None:
        body["key"] = key or uuid.uuid4().hex
        body["ts"] = time.time()
        task = asyncio.get_running_loop().create_task(self._post(body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, body: dict[str, object]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        headers = {**self.headers, "Idempotency-Key": str(body["key"])}
        for attempt in range(self.max_attempts):
            if attempt:
                self.stats.retries += 1
                delay_s = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay_s)
            self.stats.attempts += 1
            try:
                async with self._session.post(self.url, json=body, headers=headers) as resp:
                    if resp.status < 400:
                        self.stats.delivered += 1
                        return
                    if resp.status < 500 and resp.status != 429:
                        log.warning("webhook %s refused %s: HTTP %d", self.url, body, resp.status)
                        self.stats.gave_up += 1
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
        self.stats.gave_up += 1
        log.warning("webhook %s: gave up on %s after %d tries", self.url, body, self.max_attempts)

    @property
    def pending(self) -> int:
        """Deliveries still in flight."""
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait until every queued delivery has succeeded or given up."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel pending deliveries and close the HTTP session."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
