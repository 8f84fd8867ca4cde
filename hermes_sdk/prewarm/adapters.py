"""The prewarm adapter contract and the helper that delivers planner signals to adapters.

Every adapter (webhook, subprocess pool, client callbacks) implements :class:`PrewarmAdapter`:
``prewarm`` and ``release`` return promptly (the work runs in background tasks, so a slow or
failing backend never blocks the scheduler or an app), are idempotent (a second prewarm of a warm
or starting backend, a release of a cold one, are no-ops), and never raise for backend failures
(those are logged and counted). ``aclose`` stops background work. One parametrised conformance
test (tests/prewarm/test_conformance.py) holds every adapter to this.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from hermes_sdk.prewarm.planner import PrewarmSignal

log = logging.getLogger("hermes_sdk.prewarm")


@runtime_checkable
class PrewarmAdapter(Protocol):
    """Receives prewarm/release signals for backends and acts on them without blocking."""

    async def prewarm(
        self, backend: str, *, reason: str = "", eta_s: float | None = None, key: str = ""
    ) -> None:
        """Start warming ``backend``; ``eta_s``: predicted seconds until it is needed."""
        ...

    async def release(self, backend: str, *, key: str = "") -> None:
        """Let ``backend`` go cold (stop it, scale to zero)."""
        ...

    async def aclose(self) -> None:
        """Stop background work and free resources."""
        ...


async def deliver(signals: Iterable[PrewarmSignal], adapters: Iterable[PrewarmAdapter]) -> None:
    """Hand each signal to every adapter; an adapter's error is logged, never raised."""
    targets = list(adapters)
    for signal in signals:
        for adapter in targets:
            try:
                if signal.action == "prewarm":
                    await adapter.prewarm(
                        signal.backend, reason=signal.reason, eta_s=signal.eta_s, key=signal.key
                    )
                else:
                    await adapter.release(signal.backend, key=signal.key)
            except Exception:  # an adapter bug must not stop the planner
                log.exception("prewarm adapter %r failed on %s", adapter, signal)
