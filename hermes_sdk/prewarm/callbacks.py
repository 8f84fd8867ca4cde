"""Client-callback prewarm adapter: planner signals to ``hermes.on_prewarm(backend, fn)``.

The registry of callbacks lives in :mod:`hermes_sdk.instrument.prewarm_hooks` (the public
``hermes.on_prewarm``; callbacks receive the signal, run on a worker thread, and their errors are
logged, never raised). This adapter hands the planner's signals to it, so an app process running
the planner (embedded mode) warms its own tools when told.
"""

from __future__ import annotations

import uuid

from hermes_sdk.instrument.prewarm_hooks import dispatch_prewarm, on_prewarm
from hermes_sdk.prewarm.planner import PrewarmSignal

__all__ = ["CallbackAdapter", "on_prewarm"]


class CallbackAdapter:
    """Prewarm adapter that dispatches signals to the callbacks registered with on_prewarm."""

    def __init__(self) -> None:
        self.dispatched = 0
        """Callback invocations handed to the worker pool so far."""

    def __repr__(self) -> str:
        return "CallbackAdapter()"

    async def prewarm(
        self, backend: str, *, reason: str = "", eta_s: float | None = None, key: str = ""
    ) -> None:
        """Dispatch a ``prewarm`` notice to ``backend``'s callbacks; returns without waiting."""
        signal = PrewarmSignal("prewarm", backend, reason, key or uuid.uuid4().hex, eta_s)
        self.dispatched += dispatch_prewarm(signal)

    async def release(self, backend: str, *, key: str = "") -> None:
        """Dispatch a ``release`` notice (to callbacks subscribed with ``releases=True``)."""
        signal = PrewarmSignal("release", backend, "", key or uuid.uuid4().hex)
        self.dispatched += dispatch_prewarm(signal)

    async def aclose(self) -> None:
        """Nothing to free: callbacks run on the instrument's shared worker pool."""
