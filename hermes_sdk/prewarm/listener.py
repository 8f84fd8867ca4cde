"""Receive the scheduler's prewarm signals in an app process and run its ``on_prewarm`` callbacks.

:class:`PrewarmListener` long-polls ``GET /v1/prewarm/signals`` of a scheduler service and hands
each signal to :func:`hermes_sdk.instrument.prewarm_hooks.dispatch_prewarm`, so callbacks
registered with ``hermes.on_prewarm(backend, fn)`` run when the scheduler predicts the backend is
needed. Fail-open: connection errors back off (up to ``max_backoff_s``) and are logged once per
outage; the app never waits on the listener.
"""

from __future__ import annotations

import asyncio
import logging
import math

import aiohttp

from hermes_sdk.instrument.prewarm_hooks import dispatch_prewarm
from hermes_sdk.prewarm.planner import PrewarmSignal

log = logging.getLogger("hermes_sdk.prewarm.listener")


class PrewarmListener:
    """Background task forwarding a scheduler's prewarm signals to local callbacks."""

    def __init__(
        self,
        scheduler_url: str,
        *,
        api_key: str | None = None,
        wait_s: float = 20.0,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.url = scheduler_url.rstrip("/") + "/v1/prewarm/signals"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.wait_s = wait_s
        self.max_backoff_s = max_backoff_s
        self.seq: int | None = None
        """Number of the last signal seen (None until the first answer: old signals are skipped)."""
        self.received = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start listening on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="prewarm-listen")

    async def _run(self) -> None:
        backoff_s = 0.0
        timeout = aiohttp.ClientTimeout(total=self.wait_s + 10.0)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as session:
            while True:
                if backoff_s:
                    await asyncio.sleep(backoff_s)
                try:
                    await self._poll(session)
                    backoff_s = 0.0
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
                    if not backoff_s:
                        log.warning("hermes: prewarm signals unavailable (%r); retrying", exc)
                    backoff_s = min(self.max_backoff_s, max(0.1, 2.0 * backoff_s))

    async def _poll(self, session: aiohttp.ClientSession) -> None:
        wait_s = 0.0 if self.seq is None else self.wait_s
        params = {"after": str(self.seq or 0), "wait_s": str(wait_s)}
        async with session.get(self.url, params=params) as resp:
            resp.raise_for_status()
            body = await resp.json()
        seq = int(body["seq"])
        if self.seq is not None:
            for raw in body["signals"]:
                eta = raw.get("eta_s")
                signal = PrewarmSignal(
                    "release" if raw["action"] == "release" else "prewarm",
                    str(raw["backend"]),
                    str(raw.get("reason", "")),
                    str(raw.get("key", "")),
                    float(eta) if isinstance(eta, (int, float)) and math.isfinite(eta) else None,
                    float(raw.get("probability", 0.0)),
                )
                self.received += 1
                dispatch_prewarm(signal)
        self.seq = seq

    async def aclose(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
